package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/cloudevents"
	"github.com/tandemrun/tandem/resiliency"
)

// The state store metadata that turns on Dapr's transactional outbox.
const (
	outboxPublishPubsubKey           = "outboxPublishPubsub"
	outboxPublishTopicKey            = "outboxPublishTopic"
	outboxPubsubKey                  = "outboxPubsub"
	outboxDiscardWhenMissingStateKey = "outboxDiscardWhenMissingState"
	// outboxProjectionKey on an upsert's metadata makes its value the
	// message of the upsert of the same key, and keeps it out of the store.
	outboxProjectionKey = "outbox.projection"
	// outboxMarkerPrefix starts the key of the marker each message writes
	// in the transaction (Dapr's "outbox-<uuid>", without key prefix).
	outboxMarkerPrefix = "outbox-"
)

// OutboxConfig is a state store's outbox, read from its metadata.
type OutboxConfig struct {
	// PublishPubsub and PublishTopic are where the app's messages go.
	PublishPubsub, PublishTopic string
	// OutboxPubsub carries the internal messages (default PublishPubsub).
	OutboxPubsub string
	// DiscardWhenMissingState drops an internal message whose transaction
	// never committed instead of leaving it to the broker for redelivery.
	DiscardWhenMissingState bool
}

// OutboxConfigOf reads a state store's outbox settings; ok is false when
// outboxPublishPubsub or outboxPublishTopic is missing (no outbox).
func OutboxConfigOf(md components.Metadata) (c OutboxConfig, ok bool) {
	p := md.Properties
	c = OutboxConfig{PublishPubsub: p[outboxPublishPubsubKey], PublishTopic: p[outboxPublishTopicKey], OutboxPubsub: p[outboxPubsubKey]}
	c.DiscardWhenMissingState, _ = strconv.ParseBool(strings.TrimSpace(p[outboxDiscardWhenMissingStateKey]))
	if c.PublishPubsub == "" || c.PublishTopic == "" {
		return OutboxConfig{}, false
	}
	if c.OutboxPubsub == "" {
		c.OutboxPubsub = c.PublishPubsub
	}
	return c, true
}

// OutboxOptions configures the outbox.
type OutboxOptions struct {
	// States holds the state stores; Metadata gives their settings.
	States   *components.Registry[state.Store]
	Metadata func(name string) (components.Metadata, bool)
	// PubSub publishes (with its topic scoping, resiliency and metrics).
	PubSub *PubSub
	// AppID and Namespace name the internal topics.
	AppID, Namespace string
	Log              *slog.Logger
	// MarkerWait bounds how long a delivered internal message waits for its
	// transaction's marker (default 10s, as Dapr); Resync is how often the
	// internal subscriptions follow the components (default 1s).
	MarkerWait, Resync time.Duration
}

// Outbox is Dapr's transactional outbox. A transaction on a store with
// an outbox first publishes one internal message per upsert to the
// outbox pub/sub and adds a marker key to the transaction; the outbox's
// own subscription then waits for the marker (the transaction committed),
// publishes the message to the app's topic and deletes the marker. A
// message whose marker never appears is left to the broker for
// redelivery, or dropped with DiscardWhenMissingState.
type Outbox struct {
	o   OutboxOptions
	log *slog.Logger

	mu     sync.Mutex
	active map[string]*outboxSub // by state store name
	// failing holds the stores whose subscription failed, to log once.
	failing map[string]bool
}

type outboxSub struct {
	cfg    OutboxConfig
	inst   pubsub.PubSub
	cancel context.CancelFunc
}

// NewOutbox returns the outbox; its subscriptions run with Run.
func NewOutbox(o OutboxOptions) *Outbox {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.States == nil {
		o.States = components.NewRegistry[state.Store]()
	}
	if o.PubSub == nil {
		o.PubSub = NewPubSub(PubSubConfig{AppID: o.AppID})
	}
	if o.MarkerWait <= 0 {
		o.MarkerWait = 10 * time.Second
	}
	if o.Resync <= 0 {
		o.Resync = time.Second
	}
	return &Outbox{o: o, log: o.Log.With("component", "outbox"), active: map[string]*outboxSub{}, failing: map[string]bool{}}
}

// config returns store's outbox, if it has one.
func (x *Outbox) config(store string) (OutboxConfig, bool) {
	if x == nil || x.o.Metadata == nil {
		return OutboxConfig{}, false
	}
	md, ok := x.o.Metadata(store)
	if !ok {
		return OutboxConfig{}, false
	}
	return OutboxConfigOf(md)
}

// topic is the internal topic of a store's outbox.
func (x *Outbox) topic(c OutboxConfig) string {
	return x.o.Namespace + x.o.AppID + c.PublishTopic + "outbox"
}

// projections removes the outbox.projection upserts from ops and returns
// them by key.
func projections(ops []state.Operation) ([]state.Operation, map[string]*state.SetRequest) {
	proj := map[string]*state.SetRequest{}
	kept := ops[:0:0]
	for _, op := range ops {
		if op.Upsert != nil {
			if v, err := strconv.ParseBool(op.Upsert.Metadata[outboxProjectionKey]); err == nil && v {
				proj[op.Upsert.Key] = op.Upsert
				continue
			}
		}
		kept = append(kept, op)
	}
	return kept, proj
}

// messageData is the data and content type of the message of an upsert:
// binary values as they are (with their contentType metadata), JSON
// strings as their text, other JSON as application/json unless the
// upsert names another content type.
func messageData(u *state.SetRequest) ([]byte, string) {
	ct := u.Metadata["contentType"]
	if u.IsBinary || cloudevents.IsJSON(ct) {
		return u.Value, ct
	}
	var s string
	if json.Unmarshal(u.Value, &s) == nil {
		return []byte(s), ct
	}
	if ct == "" {
		ct = "application/json"
	}
	return u.Value, ct
}

// publishInternal publishes the internal message of every upsert of ops
// (app keys, projections removed; proj holds them) and returns the
// marker upserts to add to the transaction. Any failure fails the whole
// transaction before it is written.
func (x *Outbox) publishInternal(ctx context.Context, c OutboxConfig, ops []state.Operation, proj map[string]*state.SetRequest) ([]state.Operation, error) {
	var markers []state.Operation
	for _, op := range ops {
		if op.Upsert == nil {
			continue
		}
		src := op.Upsert
		if p, ok := proj[src.Key]; ok {
			src = p
		}
		data, ct := messageData(src)
		marker := outboxMarkerPrefix + cloudevents.NewID()
		topic := x.topic(c)
		ev, err := cloudevents.Wrap(cloudevents.Request{
			Data: data, DataContentType: ct, Topic: topic, PubsubName: c.OutboxPubsub, Source: x.o.AppID,
		})
		if err != nil {
			return nil, err
		}
		for k, v := range op.Upsert.Metadata {
			if k != "data" && k != "id" && k != outboxProjectionKey {
				ev[k] = v
			}
		}
		ev["id"] = marker
		b, err := cloudevents.Marshal(ev)
		if err != nil {
			return nil, err
		}
		if err := x.publish(ctx, c.OutboxPubsub, topic, b); err != nil {
			return nil, err
		}
		markers = append(markers, state.Operation{Upsert: &state.SetRequest{Key: marker, Value: []byte("0")}})
	}
	return markers, nil
}

// publish sends one CloudEvent to a pub/sub component under its topic
// scoping and outbound resiliency; the error is the broker's own.
func (x *Outbox) publish(ctx context.Context, pubsubName, topic string, data []byte) error {
	p := x.o.PubSub
	inst, release, err := p.component(pubsubName, topic)
	if err != nil {
		return err
	}
	defer release()
	if err := p.mayPublish(inst, topic); err != nil {
		return err
	}
	start := time.Now()
	req := &pubsub.PublishRequest{Topic: topic, Data: data, ContentType: cloudevents.ContentType}
	_, err = outbound(ctx, p.cfg.Resiliency, pubsubName, resiliency.Pubsub, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, inst.Publish(ctx, req)
	})
	p.cfg.Metrics.egress(pubsubName, topic, err, start)
	return err
}

// Run keeps one internal subscription per store with an outbox, on its
// outbox pub/sub's ready instance, until ctx ends.
func (x *Outbox) Run(ctx context.Context) error {
	t := time.NewTicker(x.o.Resync)
	defer t.Stop()
	defer x.stopAll()
	for {
		x.sync(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (x *Outbox) stopAll() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, s := range x.active {
		s.cancel()
		delete(x.active, name)
	}
}

// sync makes the internal subscriptions match the stores and pub/subs.
func (x *Outbox) sync(ctx context.Context) {
	want := map[string]OutboxConfig{}
	if x.o.States != nil {
		for _, name := range x.o.States.Names() {
			if c, ok := x.config(name); ok {
				want[name] = c
			}
		}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for name, s := range x.active {
		c, ok := want[name]
		var cur pubsub.PubSub
		if ok && x.o.PubSub.cfg.Registry != nil {
			cur, _, _ = x.o.PubSub.cfg.Registry.Get(c.OutboxPubsub)
		}
		if !ok || c != s.cfg || cur != s.inst {
			s.cancel()
			delete(x.active, name)
		}
	}
	for name, c := range want {
		if _, ok := x.active[name]; ok || x.o.PubSub.cfg.Registry == nil {
			continue
		}
		inst, st, ok := x.o.PubSub.cfg.Registry.Get(c.OutboxPubsub)
		if !ok || st.State != components.StateReady {
			continue
		}
		subCtx, cancel := context.WithCancel(ctx)
		store, cfg := name, c
		err := inst.Subscribe(subCtx, pubsub.SubscribeRequest{Topic: x.topic(c)}, func(ctx context.Context, msg *pubsub.Message) error {
			return x.deliver(ctx, store, cfg, msg)
		})
		if err != nil {
			cancel()
			if !x.failing[name] {
				x.failing[name] = true
				x.log.Error("cannot subscribe to the internal outbox topic; retrying every second", "store", name, "pubsub", c.OutboxPubsub, "error", err)
			}
			continue
		}
		delete(x.failing, name)
		x.active[name] = &outboxSub{cfg: c, inst: inst, cancel: cancel}
	}
}

// errMarkerMissing: the internal message's transaction has not committed.
var errMarkerMissing = errors.New("outbox state not found")

// deliver handles one internal message: once its marker exists it is
// published to the app's topic and the marker deleted. An error leaves
// it to the broker for redelivery.
func (x *Outbox) deliver(ctx context.Context, store string, c OutboxConfig, msg *pubsub.Message) error {
	ev, err := cloudevents.Parse(msg.Data)
	if err != nil {
		x.log.Error("dropping an internal outbox message that is not a CloudEvent", "store", store, "error", err)
		return nil
	}
	marker := cloudevents.String(ev, "id")
	if !strings.HasPrefix(marker, outboxMarkerPrefix) {
		x.log.Error("dropping an internal outbox message without a marker id", "store", store, "id", marker)
		return nil
	}
	if err := x.waitMarker(ctx, store, marker); err != nil {
		if errors.Is(err, errMarkerMissing) && c.DiscardWhenMissingState {
			x.log.Error("discarding outbox message: its transaction did not commit", "store", store, "pubsub", c.PublishPubsub, "topic", c.PublishTopic, "id", marker)
			return nil
		}
		x.log.Error("outbox message not published yet; left for redelivery", "store", store, "pubsub", c.PublishPubsub, "topic", c.PublishTopic, "error", err)
		return err
	}
	ev["topic"] = c.PublishTopic
	ev["pubsubname"] = c.PublishPubsub
	b, err := cloudevents.Marshal(ev)
	if err != nil {
		return err
	}
	if err := x.publish(ctx, c.PublishPubsub, c.PublishTopic, b); err != nil {
		x.log.Error("cannot publish outbox message; left for redelivery", "pubsub", c.PublishPubsub, "topic", c.PublishTopic, "error", err)
		return err
	}
	return x.withStore(store, func(st state.Store) error {
		return st.Delete(ctx, &state.DeleteRequest{Key: marker})
	})
}

// waitMarker polls for marker in store until it exists or MarkerWait
// passes (errMarkerMissing).
func (x *Outbox) waitMarker(ctx context.Context, store, marker string) error {
	deadline := time.Now().Add(x.o.MarkerWait)
	delay := 50 * time.Millisecond
	for {
		var found bool
		err := x.withStore(store, func(st state.Store) error {
			resp, err := st.Get(ctx, &state.GetRequest{Key: marker})
			found = err == nil && resp != nil && len(resp.Data) > 0
			return err
		})
		switch {
		case found:
			return nil
		case err != nil:
			return err
		case time.Now().Add(delay).After(deadline):
			return fmt.Errorf("cannot publish outbox message %s: %w", marker, errMarkerMissing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

func (x *Outbox) withStore(store string, fn func(state.Store) error) error {
	st, release, err := x.o.States.Acquire(store)
	if err != nil {
		return fmt.Errorf("outbox state store %s: %w", store, err)
	}
	defer release()
	return fn(st)
}

// prepare returns ops without their outbox.projection upserts, the
// projections by key and store's outbox; ok is false (ops unchanged)
// when store has no outbox.
func (x *Outbox) prepare(store string, ops []state.Operation) (kept []state.Operation, proj map[string]*state.SetRequest, c OutboxConfig, ok bool) {
	c, ok = x.config(store)
	if !ok {
		return ops, nil, c, false
	}
	kept, proj = projections(ops)
	return kept, proj, c, true
}
