package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/cloudevents"
	"github.com/tandemrun/tandem/proxy/subscriptions"
	"github.com/tandemrun/tandem/resiliency"
)

// PubSubConfig configures the pub/sub API.
type PubSubConfig struct {
	// Registry holds the pub/sub components.
	Registry *components.Registry[pubsub.PubSub]
	// AppID is this sidecar's. Namespace is NAMESPACE as set: declarative
	// subscriptions of another namespace are skipped; "" (NAMESPACE unset)
	// keeps them all, as daprd does.
	AppID, Namespace string
	// Declarative returns the current declarative Subscriptions; it may
	// change on hot reload (then call Reload). Nil means none.
	Declarative func() []components.Subscription
	Log         *slog.Logger
	// Resiliency, if set, returns the Resiliency policies in effect:
	// Publish runs under the component's outbound policy, and deliveries
	// to the app and to streaming subscribers under its inbound policy;
	// a batch's retries send only the entries the app has not settled.
	// When the inbound policy gives up, the message is left to the broker
	// for redelivery. Nil: one attempt each.
	Resiliency func() *resiliency.Set
	// NoProgrammatic skips asking the app for its subscriptions
	// (--disable-init-endpoints subscribe): only declarative and
	// streaming subscriptions are served.
	NoProgrammatic bool
	// Scopes returns the topic scoping of a component instance
	// (publishingScopes, subscriptionScopes, allowedTopics,
	// protectedTopics), usually topicscope.Table.Of. Publishing to a topic
	// AppID may not publish to fails with ERR_PUBSUB_FORBIDDEN, and a
	// subscription AppID may not make is not made. Nil: no scoping.
	Scopes func(pubsub.PubSub) *topicscope.Scopes
	// Metrics records daprd's pub/sub component metrics; its nil funcs
	// record nothing.
	Metrics PubSubMetrics
}

// PubSubMetrics are the recorders of daprd's dapr_component_pubsub_*
// metrics, as plain funcs so the API does not depend on the metrics
// package.
type PubSubMetrics struct {
	// Egress records one publish (egress_count, egress_latencies).
	Egress func(component, topic string, success bool, d time.Duration)
	// BulkEgress records one bulk publish call (egress_bulk_count,
	// egress_bulk_event_count, egress_bulk_latencies).
	BulkEgress func(component, topic string, success bool, events int, d time.Duration)
	// Ingress records one delivery to the app (ingress_count,
	// ingress_latencies); see subscriptions.IngressStatus.
	Ingress func(component, topic, processStatus, status string, d time.Duration)
}

func (m PubSubMetrics) egress(component, topic string, err error, start time.Time) {
	if m.Egress != nil {
		m.Egress(component, topic, err == nil, time.Since(start))
	}
}

func (m PubSubMetrics) bulkEgress(component, topic string, err error, events int, start time.Time) {
	if m.BulkEgress != nil {
		m.BulkEgress(component, topic, err == nil, events, time.Since(start))
	}
}

// PubSub is the publish and subscribe API: publishing (HTTP and gRPC) and
// the subscriptions that deliver messages to the app.
type PubSub struct {
	cfg    PubSubConfig
	log    *slog.Logger
	reload chan struct{}
	// discovery is how the app is asked for its subscriptions.
	discovery subscriptions.RetryPolicy
	// resync is how often subscriptions are checked against the components
	// even without Reload (a component that became ready, a swapped
	// instance).
	resync time.Duration
	// drainLimit bounds the wait for deliveries in flight when a
	// subscription is replaced (not at shutdown: the sidecar bounds that).
	drainLimit time.Duration

	mu           sync.Mutex
	programmatic []*subscriptions.Subscription
	desired      []*subscriptions.Subscription
	active       map[string]*activeSub
	streams      map[*activeSub]struct{}
	reported     map[string]string // key -> last problem logged, to log once
	// running is set while Run keeps the subscriptions in step with the
	// components; settled then holds the instance of each ready pub/sub
	// component as of the last finished round (see Settled).
	running bool
	settled map[string]pubsub.PubSub

	// started is closed once Run has asked the app for its subscriptions
	// and made the first round of them (Started).
	started     chan struct{}
	startedOnce sync.Once
	// created is when the API was made (InitAttempted).
	created time.Time
}

// activeSub is one running broker subscription.
type activeSub struct {
	sub     *subscriptions.Subscription
	inst    pubsub.PubSub
	release func()
	cancel  context.CancelFunc
	flight  *inflight
	// batcher collects the messages of a bulk subscription; nil otherwise.
	batcher *subscriptions.Batcher
	// onStop is StreamRequest.OnStop (streaming subscriptions).
	onStop func()
	// stopOnce makes stopping happen once, whoever asks first (the
	// sidecar's shutdown or the stream's end).
	stopOnce sync.Once
	// delivered and rate count the deliveries finished, for Load.
	delivered atomic.Uint64
	rate      loadreport.Rate
	// backlog is the broker's last answer on this subscription's backlog.
	backlog backlogCache
}

// NewPubSub returns the pub/sub API. Subscriptions start when Run is called.
func NewPubSub(cfg PubSubConfig) *PubSub {
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{
		cfg:        cfg,
		log:        log.With("component", "pubsub"),
		reload:     make(chan struct{}, 1),
		discovery:  subscriptions.DefaultRetryPolicy,
		resync:     time.Second,
		drainLimit: 30 * time.Second,
		active:     map[string]*activeSub{},
		streams:    map[*activeSub]struct{}{},
		reported:   map[string]string{},
		started:    make(chan struct{}),
		created:    time.Now(),
	}
}

// Started reports whether Run has made the app's first subscriptions: the
// app's programmatic ones and the declarative ones whose component is
// ready. As in Dapr, the sidecar reports healthy only after this, so an
// event published once it is healthy reaches a subscription that exists.
// A subscription that cannot be made yet is retried later and does not
// hold Started back.
func (p *PubSub) Started() bool {
	select {
	case <-p.started:
		return true
	default:
		return false
	}
}

// InitAttempted reports whether every pub/sub component has had its
// first Init attempt (or firstInitLimit has passed since the API was
// made): the sidecar's outbound health waits for it, as daprd's waits for
// its components, so that a publish made as soon as it answers finds the
// component initialised.
func (p *PubSub) InitAttempted() bool {
	return p.cfg.Registry == nil || firstAttemptsDone(p.cfg.Registry, p.created)
}

func (p *PubSub) markStarted() { p.startedOnce.Do(func() { close(p.started) }) }

// component returns the ready instance of a pub/sub component, with the
// API errors Dapr gives for a missing name or component.
func (p *PubSub) component(name, topic string) (pubsub.PubSub, func(), error) {
	// daprd 1.18 always has its pub/sub adapter: with no component loaded
	// (all removed by a reload, say) a name is simply not found.
	if p.cfg.Registry == nil {
		return nil, nil, apierr.PubSubNotConfigured(name)
	}
	if name == "" {
		return nil, nil, apierr.PubSubEmpty()
	}
	inst, release, err := p.cfg.Registry.Acquire(name)
	switch {
	case errors.Is(err, components.ErrNotFound):
		return nil, nil, apierr.PubSubNotFound(name)
	case err != nil:
		return nil, nil, apierr.PubSubNotReady(name, err)
	}
	if topic == "" {
		release()
		return nil, nil, apierr.TopicEmpty(name)
	}
	return inst, release, nil
}

// Settled reports whether the subscriptions have caught up with the
// current instance of pub/sub component name: a round of subscribing has
// finished since it became ready. daprd lists a pub/sub component among
// the registered ones only once its subscriptions are made (it commits the
// component after subscribing), so an app that waits for the component in
// the metadata API can publish at once and be delivered to; the sidecar's
// metadata API lists a ready pub/sub only once it is settled. It is true
// while Run is not running (no app, app unhealthy): there is nothing to
// wait for then.
func (p *PubSub) Settled(name string) bool {
	if p.cfg.Registry == nil {
		return true
	}
	cur, st, ok := p.cfg.Registry.Get(name)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.running || !ok || st.State != components.StateReady {
		return true
	}
	return p.settled[name] == cur
}

// readyInstances returns the ready pub/sub component instances by name.
func (p *PubSub) readyInstances() map[string]pubsub.PubSub {
	out := map[string]pubsub.PubSub{}
	if p.cfg.Registry == nil {
		return out
	}
	for _, st := range p.cfg.Registry.List() {
		if inst, cur, ok := p.cfg.Registry.Get(st.Name); ok && cur.State == components.StateReady {
			out[st.Name] = inst
		}
	}
	return out
}

// scopes returns the topic scoping of inst; nil allows everything.
func (p *PubSub) scopes(inst pubsub.PubSub) *topicscope.Scopes {
	if p.cfg.Scopes == nil {
		return nil
	}
	return p.cfg.Scopes(inst)
}

// mayPublish returns ERR_PUBSUB_FORBIDDEN when inst's topic scoping does
// not let this app publish to topic.
func (p *PubSub) mayPublish(inst pubsub.PubSub, topic string) error {
	var denied *topicscope.DeniedError
	if errors.As(p.scopes(inst).Check(topicscope.Publish, p.cfg.AppID, topic), &denied) {
		return apierr.PubSubForbidden(topic, p.cfg.AppID, denied.Reason())
	}
	return nil
}

// PublishRequest is one message to publish.
type PublishRequest struct {
	PubsubName  string
	Topic       string
	Data        []byte
	ContentType string
	// Metadata is the request metadata (rawPayload, ttlInSeconds,
	// cloudevent.*, broker options); it is passed to the broker.
	Metadata map[string]string
	// TraceParent and TraceState are the caller's trace context.
	TraceParent, TraceState string
	// HTTP is set for the HTTP API: a broker's gRPC status (a pluggable
	// component's) is then matched against Resiliency's httpStatusCodes as
	// its HTTP equivalent, as daprd does; gRPC callers match gRPCStatusCodes.
	HTTP bool
}

// rawPayload reads metadata rawPayload as Dapr does.
func rawPayload(md map[string]string) (bool, error) {
	v := md[cloudevents.MetadataRawPayload]
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("%s value must be a valid boolean: actual is '%s'", cloudevents.MetadataRawPayload, v)
	}
	return b, nil
}

// envelope returns the bytes and content type to publish for one message.
func (p *PubSub) envelope(inst pubsub.PubSub, raw bool, req *PublishRequest) ([]byte, string, error) {
	if raw {
		return req.Data, req.ContentType, nil
	}
	ev, err := cloudevents.Wrap(cloudevents.Request{
		Data: req.Data, DataContentType: req.ContentType, Topic: req.Topic, PubsubName: req.PubsubName,
		Source: p.cfg.AppID, TraceParent: req.TraceParent, TraceState: req.TraceState,
		Metadata: req.Metadata, BrokerTTL: pubsub.HasFeature(inst, pubsub.FeatureMessageTTL),
	})
	if err != nil {
		return nil, "", apierr.PubSubCloudEvent(req.PubsubName, p.cfg.AppID, err)
	}
	b, err := cloudevents.Marshal(ev)
	if err != nil {
		return nil, "", apierr.PubSubCloudEvent(req.PubsubName, p.cfg.AppID, err)
	}
	return b, cloudevents.ContentType, nil
}

// Publish publishes one message, wrapped in a CloudEvent unless metadata
// rawPayload=true. It returns once the broker accepted it.
func (p *PubSub) Publish(ctx context.Context, req PublishRequest) error {
	inst, release, err := p.component(req.PubsubName, req.Topic)
	if err != nil {
		return err
	}
	defer release()
	if err := p.mayPublish(inst, req.Topic); err != nil {
		return err
	}
	raw, err := rawPayload(req.Metadata)
	if err != nil {
		return apierr.PubSubRequestMetadata(req.PubsubName, req.Metadata, err)
	}
	data, ct, err := p.envelope(inst, raw, &req)
	if err != nil {
		return err
	}
	md := req.Metadata
	if raw && req.TraceParent != "" {
		// A raw payload has no envelope: the trace context travels as
		// message metadata (Dapr's traceid and tracestate entries), which
		// the subscriber side puts into the event it delivers.
		md = maps.Clone(md)
		if md == nil {
			md = map[string]string{}
		}
		md[cloudevents.FieldTraceID] = req.TraceParent
		if req.TraceState != "" {
			md[cloudevents.FieldTraceState] = req.TraceState
		}
	}
	preq := &pubsub.PublishRequest{Topic: req.Topic, Data: data, ContentType: ct, Metadata: md}
	start := time.Now()
	_, err = outbound(ctx, p.cfg.Resiliency, req.PubsubName, resiliency.Pubsub, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, publishStatus(inst.Publish(ctx, preq), req.HTTP)
	})
	p.cfg.Metrics.egress(req.PubsubName, req.Topic, err, start)
	if err != nil {
		return apierr.PubSubPublishMessage(req.PubsubName, req.Topic, brokerError(err))
	}
	return nil
}

// publishStatus gives a broker's gRPC status its HTTP equivalent for an
// HTTP caller's retry matching; other errors are returned as they are.
func publishStatus(err error, http bool) error {
	if err == nil || !http {
		return err
	}
	if st, ok := status.FromError(err); ok {
		return &resiliency.StatusError{HTTP: apierr.HTTPStatusFromCode(st.Code()), Err: err}
	}
	return err
}

// brokerError is the broker's own error inside one publishStatus wrapped.
func brokerError(err error) error {
	var se *resiliency.StatusError
	if errors.As(err, &se) && se.Err != nil {
		return se.Err
	}
	return err
}

// BulkPublishRequest is a batch for one topic.
type BulkPublishRequest struct {
	PubsubName, Topic       string
	Entries                 []BulkPublishEntry
	Metadata                map[string]string
	TraceParent, TraceState string
}

// BulkPublishEntry is one message of a batch; Event holds the bytes to
// wrap (or the caller's envelope for application/cloudevents+json).
type BulkPublishEntry struct {
	EntryID     string
	Event       []byte
	ContentType string
	Metadata    map[string]string
}

// BulkPublishFailure is an entry that was not published.
type BulkPublishFailure struct {
	EntryID string
	Error   string
}

// BulkPublish publishes a batch. Request errors (unknown pub/sub, missing
// or duplicate entry IDs, bad envelopes) fail the whole call; otherwise the
// entries the broker refused are returned together with an
// ERR_PUBSUB_PUBLISH_MESSAGE error.
func (p *PubSub) BulkPublish(ctx context.Context, req BulkPublishRequest) ([]BulkPublishFailure, error) {
	inst, release, err := p.component(req.PubsubName, req.Topic)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := p.mayPublish(inst, req.Topic); err != nil {
		return nil, err
	}
	raw, err := rawPayload(req.Metadata)
	if err != nil {
		return nil, apierr.PubSubRequestMetadata(req.PubsubName, req.Metadata, err)
	}
	seen := make(map[string]struct{}, len(req.Entries))
	breq := &pubsub.BulkPublishRequest{Topic: req.Topic, Metadata: req.Metadata, Entries: make([]pubsub.BulkMessageEntry, len(req.Entries))}
	for i, e := range req.Entries {
		if _, dup := seen[e.EntryID]; dup || e.EntryID == "" {
			return nil, apierr.PubSubMarshalEvents(req.PubsubName, req.Topic, p.cfg.AppID, errors.New("entryId is duplicated or not present for entry"))
		}
		seen[e.EntryID] = struct{}{}
		md := pubsub.MergeMetadata(req.Metadata, e.Metadata)
		data, ct, err := p.envelope(inst, raw, &PublishRequest{
			PubsubName: req.PubsubName, Topic: req.Topic, Data: e.Event, ContentType: e.ContentType,
			Metadata: md, TraceParent: req.TraceParent, TraceState: req.TraceState,
		})
		if err != nil {
			return nil, err
		}
		breq.Entries[i] = pubsub.BulkMessageEntry{EntryID: e.EntryID, Event: data, ContentType: ct, Metadata: e.Metadata}
	}
	start := time.Now()
	resp, err := pubsub.BulkPublish(ctx, inst, breq)
	published := len(req.Entries) - len(resp.FailedEntries)
	if err != nil && len(resp.FailedEntries) == 0 {
		published = 0
	}
	p.cfg.Metrics.bulkEgress(req.PubsubName, req.Topic, err, published, start)
	if err == nil {
		return nil, nil
	}
	failed := make([]BulkPublishFailure, 0, len(resp.FailedEntries))
	for _, f := range resp.FailedEntries {
		msg := ""
		if f.Error != nil {
			msg = f.Error.Error()
		}
		failed = append(failed, BulkPublishFailure{EntryID: f.EntryID, Error: msg})
	}
	if len(failed) == 0 {
		// The whole batch failed without per-entry detail.
		for _, e := range req.Entries {
			failed = append(failed, BulkPublishFailure{EntryID: e.EntryID, Error: err.Error()})
		}
	}
	return failed, apierr.PubSubPublishMessage(req.PubsubName, req.Topic, err)
}

// Subscriptions lists the subscriptions for the metadata API: the app's,
// the declarative ones and the open streams.
func (p *PubSub) Subscriptions() []*runtimev1.PubsubSubscription {
	p.mu.Lock()
	desired := p.desired
	if desired == nil {
		desired = p.desiredLocked()
	}
	out := make([]*runtimev1.PubsubSubscription, 0, len(desired)+len(p.streams))
	for _, s := range desired {
		out = append(out, s.ToMetadata())
	}
	for a := range p.streams {
		out = append(out, a.sub.ToMetadata())
	}
	p.mu.Unlock()
	return out
}

// Reload re-reads the declarative subscriptions and the components and
// re-subscribes what changed. It returns at once; the work happens in Run.
func (p *PubSub) Reload() {
	select {
	case p.reload <- struct{}{}:
	default:
	}
}

// desiredLocked merges the app's and the declarative subscriptions with
// Dapr's precedence: one subscription per pub/sub and topic; among
// declarative ones the first loaded wins, and the app's own (programmatic)
// subscription replaces a declarative one for the same topic (among the
// app's, the last one listed wins).
func (p *PubSub) desiredLocked() []*subscriptions.Subscription {
	byKey := map[string]int{}
	var out []*subscriptions.Subscription
	if p.cfg.Declarative != nil {
		for _, c := range p.cfg.Declarative() {
			if len(c.Scopes) > 0 && !slices.Contains(c.Scopes, p.cfg.AppID) {
				continue
			}
			if c.Namespace != "" && p.cfg.Namespace != "" && c.Namespace != p.cfg.Namespace {
				continue
			}
			s, err := subscriptions.FromDeclarative(c)
			if err != nil {
				p.reportLocked("decl|"+c.Name, "skipping subscription: fix its routes", err)
				continue
			}
			if i, ok := byKey[s.Key()]; ok {
				p.reportLocked("shadowed|"+c.Name, "declarative subscription ignored: an earlier one subscribes to the same topic",
					fmt.Errorf("subscription %q (%s) is shadowed by %q", c.Name, c.Source, out[i].Name))
				continue
			}
			byKey[s.Key()] = len(out)
			out = append(out, s)
		}
	}
	for _, s := range p.programmatic {
		if i, ok := byKey[s.Key()]; ok {
			if out[i].Kind == subscriptions.Declarative {
				p.reportLocked("override|"+s.Key(), "the app's subscription replaces the declarative subscription to the same topic",
					fmt.Errorf("subscription %q", out[i].Name))
			}
			out[i] = s
			continue
		}
		byKey[s.Key()] = len(out)
		out = append(out, s)
	}
	return out
}

// reportLocked logs a problem once per key until it changes.
func (p *PubSub) reportLocked(key, msg string, err error, attrs ...any) {
	s := err.Error()
	if p.reported[key] == s {
		return
	}
	p.reported[key] = s
	p.log.Warn(msg, append(attrs, "error", s)...)
}

// newInboundDeliverer wraps next in the pub/sub component's inbound
// Resiliency policy. The result is a subscriptions.BulkDeliverer exactly
// when next is one, so a bulk subscription keeps its batches where the
// subscriber takes them and falls back to single deliveries where not.
func newInboundDeliverer(next subscriptions.Deliverer, policies func() *resiliency.Set, pubsubName string) subscriptions.Deliverer {
	in := inboundDeliverer{next: next, policies: policies, pubsubName: pubsubName}
	if bulk, ok := next.(subscriptions.BulkDeliverer); ok {
		return inboundBulkDeliverer{inboundDeliverer: in, bulk: bulk}
	}
	return in
}

// inboundDeliverer runs deliveries to the app under the pub/sub
// component's inbound Resiliency policy, looked up per message so a hot
// reload applies at once. Only a Retry verdict (or a failed delivery) is
// retried; when the policy gives up the verdict stays Retry, so the
// message goes back to the broker and is redelivered, never lost.
type inboundDeliverer struct {
	next       subscriptions.Deliverer
	policies   func() *resiliency.Set
	pubsubName string
}

func (d inboundDeliverer) Deliver(ctx context.Context, m *subscriptions.Message) (subscriptions.Status, error) {
	pol := d.policies().ForComponentInbound(d.pubsubName, resiliency.Pubsub)
	if pol == nil {
		return d.next.Deliver(ctx, m)
	}
	st, err := resiliency.Do(ctx, pol, func(ctx context.Context) (subscriptions.Status, error) {
		st, err := d.next.Deliver(ctx, m)
		if st == subscriptions.Retry && err == nil {
			err = errors.New("the app asked to retry the event")
		}
		if st != subscriptions.Retry {
			err = nil // the app's verdict is final
		}
		return st, err
	})
	if err != nil {
		return subscriptions.Retry, err
	}
	return st, nil
}

// inboundBulkDeliverer is inboundDeliverer for a subscriber that also
// takes batches; its policy is looked up per batch.
type inboundBulkDeliverer struct {
	inboundDeliverer
	bulk subscriptions.BulkDeliverer
}

var _ subscriptions.BulkDeliverer = inboundBulkDeliverer{}

// DeliverBulk runs a batch under the inbound policy the way Dapr runs bulk
// subscriptions: an attempt that leaves any entry to retry (the app
// answered RETRY or nothing for it, or the call failed) counts as a
// failure for the retry and circuit breaker policies, and the next attempt
// sends only the entries still to retry. The app's other verdicts
// (SUCCESS, DROP, DISCARD for a missing handler) are final: they are kept
// and their entries never sent again. When the policy gives up, the
// entries still waiting stay Retry, so the broker redelivers them.
func (d inboundBulkDeliverer) DeliverBulk(ctx context.Context, b *subscriptions.BulkMessage) ([]subscriptions.Status, error) {
	pol := d.policies().ForComponentInbound(d.pubsubName, resiliency.Pubsub)
	if pol == nil {
		return d.bulk.DeliverBulk(ctx, b)
	}
	r := newBulkAttempts(b)
	_, err := resiliency.Do(ctx, pol, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, r.attempt(ctx, d.bulk)
	})
	return r.finish(err)
}

// bulkAttempts is one batch's verdicts across the attempts of the policy.
// An attempt that timed out is abandoned, not waited for, so it may still
// record the app's answer while the next attempt runs: hence the lock.
type bulkAttempts struct {
	batch *subscriptions.BulkMessage

	mu sync.Mutex
	// verdicts has one entry per batch entry: Retry until the app gives a
	// final verdict, which nothing overwrites.
	verdicts []subscriptions.Status
	// reason is the latest error that came with verdicts, for the logs of
	// entries that end as Retry or Discard.
	reason error
	// done is set once finish has handed the verdicts over.
	done bool
}

func newBulkAttempts(b *subscriptions.BulkMessage) *bulkAttempts {
	v := make([]subscriptions.Status, len(b.Entries))
	for i := range v {
		v[i] = subscriptions.Retry
	}
	return &bulkAttempts{batch: b, verdicts: v}
}

// attempt sends the entries still waiting for a final verdict and records
// the app's answers. It fails while any entry is still to retry.
func (r *bulkAttempts) attempt(ctx context.Context, next subscriptions.BulkDeliverer) error {
	r.mu.Lock()
	var idx []int
	for i, st := range r.verdicts {
		if st == subscriptions.Retry {
			idx = append(idx, i)
		}
	}
	r.mu.Unlock()
	if len(idx) == 0 {
		// An abandoned attempt's late answer settled them all.
		return nil
	}
	part := *r.batch
	part.Entries = make([]subscriptions.BulkEntry, len(idx))
	for j, i := range idx {
		part.Entries[j] = r.batch.Entries[i]
	}
	sts, err := next.DeliverBulk(ctx, &part)

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		return err
	}
	if err != nil {
		r.reason = err
	}
	left := 0
	for j, i := range idx {
		if j < len(sts) && r.verdicts[i] == subscriptions.Retry {
			r.verdicts[i] = sts[j] // a missing verdict stays Retry
		}
		if r.verdicts[i] == subscriptions.Retry {
			left++
		}
	}
	switch {
	case left == 0:
		return nil
	case err != nil:
		return err
	}
	return fmt.Errorf("the app asked to retry %d of %d entries of the batch", left, len(idx))
}

// finish returns the verdicts once the policy is done with the batch; err
// is the policy's, which says why entries still to retry gave up.
func (r *bulkAttempts) finish(err error) ([]subscriptions.Status, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = true
	out := slices.Clone(r.verdicts)
	switch {
	case slices.Contains(out, subscriptions.Retry):
		if err == nil {
			err = r.reason
		}
		if err == nil {
			err = errors.New("the app did not settle every entry of the batch")
		}
		return out, err
	case slices.Contains(out, subscriptions.Discard):
		return out, r.reason
	}
	return out, nil
}
