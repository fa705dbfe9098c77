package subscriptions

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/invoke"
)

// RetryPolicy is how discovery retries a failing app (Dapr's built-in
// initialization retries: 3 retries, exponential from 500ms).
type RetryPolicy struct {
	Attempts int
	Backoff  time.Duration
}

// DefaultRetryPolicy is Dapr's DaprBuiltInInitializationRetries.
var DefaultRetryPolicy = RetryPolicy{Attempts: 4, Backoff: 500 * time.Millisecond}

func (r RetryPolicy) do(ctx context.Context, f func(context.Context) error) error {
	backoff := r.Backoff
	var err error
	for i := 0; i < max(r.Attempts, 1); i++ {
		if err = f(ctx); err == nil {
			return nil
		}
		if i == r.Attempts-1 {
			break
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, 10*time.Second)
	}
	return err
}

// subscriptionJSON is one entry of GET /dapr/subscribe.
type subscriptionJSON struct {
	PubsubName      string            `json:"pubsubname"`
	Topic           string            `json:"topic"`
	DeadLetterTopic string            `json:"deadLetterTopic"`
	Metadata        map[string]string `json:"metadata"`
	Route           string            `json:"route"`
	Routes          struct {
		Rules []struct {
			Match string `json:"match"`
			Path  string `json:"path"`
		} `json:"rules"`
		Default string `json:"default"`
	} `json:"routes"`
	BulkSubscribe struct {
		Enabled            bool  `json:"enabled"`
		MaxMessagesCount   int32 `json:"maxMessagesCount"`
		MaxAwaitDurationMs int32 `json:"maxAwaitDurationMs"`
	} `json:"bulkSubscribe"`
}

// maxSubscribeBody bounds the app's /dapr/subscribe answer.
const maxSubscribeBody = 4 << 20

// DiscoverHTTP asks an HTTP app for its subscriptions (GET /dapr/subscribe).
// 404 means none; another non-200 status is logged and means none, as in
// Dapr; transport errors are retried per r. Entries without a route or
// with a bad match expression are skipped with an error log.
//
// The request carries Dapr-App-Id: appID, as daprd's does.
func DiscoverHTTP(ctx context.Context, app invoke.AppChannel, appID string, r RetryPolicy, log *slog.Logger) ([]*Subscription, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var body []byte
	var code int
	err := r.do(ctx, func(ctx context.Context) error {
		resp, err := app.Invoke(ctx, &invoke.Request{Message: &internalsv1.InternalInvokeRequest{
			Ver: internalsv1.APIVersion_V1,
			Message: &commonv1.InvokeRequest{
				Method:        "dapr/subscribe",
				ContentType:   "application/json",
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_GET},
			},
			Metadata: appIDHeader(appID),
		}})
		if err != nil {
			log.Debug("GET /dapr/subscribe failed; retrying", "error", err)
			return err
		}
		defer resp.Body.Close()
		code = int(resp.Message.GetStatus().GetCode())
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxSubscribeBody))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get subscriptions from the app (GET /dapr/subscribe): %w", err)
	}
	switch code {
	case http.StatusOK:
	case http.StatusNotFound:
		log.Debug("app has no /dapr/subscribe endpoint: no programmatic subscriptions")
		return nil, nil
	default:
		log.Error("app answered GET /dapr/subscribe with an unexpected status: no programmatic subscriptions", "status", code)
		return nil, nil
	}
	var items []subscriptionJSON
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, fmt.Errorf("app's GET /dapr/subscribe answer is not a JSON array of subscriptions: %w", err)
	}
	out := make([]*Subscription, 0, len(items))
	for _, it := range items {
		s := &Subscription{
			Kind: Programmatic, PubsubName: it.PubsubName, Topic: it.Topic,
			Metadata: it.Metadata, DeadLetterTopic: it.DeadLetterTopic,
			BulkSubscribe: components.BulkSubscribe(it.BulkSubscribe),
		}
		rules := make([]components.Rule, len(it.Routes.Rules))
		for i, rr := range it.Routes.Rules {
			rules[i] = components.Rule{Match: rr.Match, Path: rr.Path}
		}
		def := it.Routes.Default
		if def == "" {
			def = it.Route
		}
		if err := s.build(rules, def); err != nil {
			log.Error("skipping the app's subscription: fix its routes", "pubsub", it.PubsubName, "topic", it.Topic, "error", err)
			continue
		}
		if len(s.Rules) == 0 {
			log.Warn("skipping the app's subscription without a route: give it route or routes.default", "pubsub", it.PubsubName, "topic", it.Topic)
			continue
		}
		out = append(out, s)
	}
	return out, nil
}

// appIDHeader is the Dapr-App-Id header naming this sidecar's app, or
// none.
func appIDHeader(appID string) map[string]*internalsv1.ListStringValue {
	if appID == "" {
		return nil
	}
	return map[string]*internalsv1.ListStringValue{"dapr-app-id": {Values: []string{appID}}}
}

// DiscoverGRPC asks a gRPC app for its subscriptions
// (AppCallback/ListTopicSubscriptions); Unimplemented means none.
func DiscoverGRPC(ctx context.Context, app runtimev1.AppCallbackClient, r RetryPolicy, log *slog.Logger) ([]*Subscription, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var resp *runtimev1.ListTopicSubscriptionsResponse
	err := r.do(ctx, func(ctx context.Context) error {
		var err error
		resp, err = app.ListTopicSubscriptions(ctx, &emptypb.Empty{})
		if status.Code(err) == codes.Unimplemented {
			log.Info("gRPC app does not implement ListTopicSubscriptions: no programmatic subscriptions")
			resp, err = &runtimev1.ListTopicSubscriptionsResponse{}, nil
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get subscriptions from the app (ListTopicSubscriptions): %w", err)
	}
	out := make([]*Subscription, 0, len(resp.GetSubscriptions()))
	for _, ts := range resp.GetSubscriptions() {
		s := &Subscription{
			Kind: Programmatic, PubsubName: ts.GetPubsubName(), Topic: ts.GetTopic(),
			Metadata: ts.GetMetadata(), DeadLetterTopic: ts.GetDeadLetterTopic(),
		}
		if b := ts.GetBulkSubscribe(); b != nil {
			s.BulkSubscribe = components.BulkSubscribe{Enabled: b.GetEnabled(), MaxMessagesCount: b.GetMaxMessagesCount(), MaxAwaitDurationMs: b.GetMaxAwaitDurationMs()}
		}
		var rules []components.Rule
		for _, rr := range ts.GetRoutes().GetRules() {
			rules = append(rules, components.Rule{Match: rr.GetMatch(), Path: rr.GetPath()})
		}
		if err := s.build(rules, ts.GetRoutes().GetDefault()); err != nil {
			log.Error("skipping the app's subscription: fix its routes", "pubsub", s.PubsubName, "topic", s.Topic, "error", err)
			continue
		}
		if len(s.Rules) == 0 {
			// gRPC apps get a default route "" (OnTopicEvent with empty path).
			s.Rules = []*Rule{{}}
		}
		out = append(out, s)
	}
	return out, nil
}

// ToMetadata converts s for the metadata API.
func (s *Subscription) ToMetadata() *runtimev1.PubsubSubscription {
	out := &runtimev1.PubsubSubscription{
		PubsubName:      s.PubsubName,
		Topic:           s.Topic,
		Metadata:        s.Metadata,
		DeadLetterTopic: s.DeadLetterTopic,
		Rules:           &runtimev1.PubsubSubscriptionRules{},
	}
	for _, r := range s.Rules {
		out.Rules.Rules = append(out.Rules.Rules, &runtimev1.PubsubSubscriptionRule{Match: r.Match, Path: r.Path})
	}
	switch s.Kind {
	case Programmatic:
		out.Type = runtimev1.PubsubSubscriptionType_PROGRAMMATIC
	case Declarative:
		out.Type = runtimev1.PubsubSubscriptionType_DECLARATIVE
	case Streaming:
		out.Type = runtimev1.PubsubSubscriptionType_STREAMING
	}
	return out
}
