package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/components/pubsub/topicscope"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/subscriptions"
)

// errStopping is what a handler returns for a message that arrives while
// its subscription stops: the broker redelivers it later.
var errStopping = errors.New("subscription is stopping; the message will be redelivered")

// inflight counts the deliveries of one subscription, so it can stop
// taking new ones and wait for those running.
type inflight struct {
	mu       sync.Mutex
	n        int
	stopping bool
	idle     chan struct{} // closed when stopping and n == 0
}

func newInflight() *inflight { return &inflight{idle: make(chan struct{})} }

func (f *inflight) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopping {
		return false
	}
	f.n++
	return true
}

func (f *inflight) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n
}

func (f *inflight) leave() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.n--
	if f.stopping && f.n == 0 {
		close(f.idle)
	}
}

// stop refuses new deliveries; the returned channel closes once the
// running ones are done.
func (f *inflight) stop() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.stopping {
		f.stopping = true
		if f.n == 0 {
			close(f.idle)
		}
	}
	return f.idle
}

// Run delivers the app's and the declarative subscriptions' messages to
// app until ctx ends. It first asks the app for its subscriptions, then
// keeps the broker subscriptions in step with Reload and with the
// components' readiness. When ctx ends it stops pulling new messages and
// waits for the deliveries in flight, which are then acknowledged or
// redelivered by their own outcome: nothing is acked, dropped or
// dead-lettered because the sidecar is stopping.
func (p *PubSub) Run(ctx context.Context, app App) error {
	var deliverer subscriptions.Deliverer
	var ask func() ([]*subscriptions.Subscription, error)
	discover := !p.cfg.NoProgrammatic
	switch {
	case app.HTTP != nil:
		deliverer = subscriptions.HTTPDeliverer{App: app.HTTP}
		ask = func() ([]*subscriptions.Subscription, error) {
			return subscriptions.DiscoverHTTP(ctx, app.HTTP, p.cfg.AppID, p.discovery, p.log)
		}
	case app.GRPC != nil:
		client := runtimev1.NewAppCallbackClient(app.GRPC.Conn())
		deliverer = subscriptions.GRPCDeliverer{App: client, Alpha: runtimev1.NewAppCallbackAlphaClient(app.GRPC.Conn())}
		ask = func() ([]*subscriptions.Subscription, error) {
			return subscriptions.DiscoverGRPC(ctx, client, p.discovery, p.log)
		}
	default:
		p.log.Info("no app channel: only streaming subscriptions are served")
	}
	// The app is asked once, when the first pub/sub component is there
	// (at start, or when one is added later), as daprd does: an app of a
	// sidecar without pub/sub is never called at /dapr/subscribe.
	asked := false
	askApp := func() {
		if asked || ask == nil || !p.hasPubSubs() {
			return
		}
		asked = true
		if !discover {
			// daprd's wording, which tooling looks for.
			p.log.Warn("Skipping programmatic subscription loading (see 'disable-init-endpoints' flag/annotation)")
			return
		}
		programmatic, err := ask()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.Error("cannot get the app's subscriptions; serving the declarative ones only", "error", err)
		}
		for _, s := range programmatic {
			p.log.Info("app subscribes", "pubsub", s.PubsubName, "topic", s.Topic)
		}
		p.mu.Lock()
		p.programmatic = programmatic
		p.mu.Unlock()
	}
	askApp()
	if ctx.Err() != nil {
		return nil
	}

	t := time.NewTicker(p.resync)
	defer t.Stop()
	defer p.markStarted()
	p.waitFirstInit(ctx, firstInitWait)
	p.mu.Lock()
	p.running, p.settled = true, nil
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.running, p.settled = false, nil
		p.mu.Unlock()
	}()
	for {
		// The instances this round subscribes on: one that becomes ready
		// during the round is settled by the next.
		askApp()
		ready := p.readyInstances()
		if deliverer != nil {
			p.reconcile(ctx, deliverer)
		}
		p.mu.Lock()
		p.settled = ready
		p.mu.Unlock()
		p.markStarted()
		select {
		case <-ctx.Done():
			p.stopAll()
			return nil
		case <-p.reload:
		case <-t.C:
		}
	}
}

// hasPubSubs reports whether any pub/sub component is loaded, ready or
// not.
func (p *PubSub) hasPubSubs() bool {
	return p.cfg.Registry != nil && len(p.cfg.Registry.List()) > 0
}

// firstInitWait bounds how long Run waits for the pub/sub components'
// first Init attempts before making the first subscriptions.
const firstInitWait = 10 * time.Second

// waitFirstInit waits, up to limit, until no pub/sub component is still in
// its first Init attempt, so the first subscriptions (and Started, which
// the sidecar's health waits for, as daprd's waits for its components)
// include the components that come up at start: a streaming subscriber
// that connects once the sidecar is healthy finds its pub/sub ready.
func (p *PubSub) waitFirstInit(ctx context.Context, limit time.Duration) {
	if p.cfg.Registry == nil {
		return
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		initializing := false
		for _, st := range p.cfg.Registry.List() {
			if st.State == components.StateInitializing {
				initializing = true
				break
			}
		}
		if !initializing {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-deadline.C:
			return
		case <-tick.C:
		}
	}
}

// reconcile makes the running subscriptions match the desired ones on the
// current component instances.
func (p *PubSub) reconcile(ctx context.Context, d subscriptions.Deliverer) {
	p.mu.Lock()
	desired := p.desiredLocked()
	p.desired = desired
	want := make(map[string]*subscriptions.Subscription, len(desired))
	for _, s := range desired {
		want[s.Key()] = s
	}
	var stale []*activeSub
	for k, a := range p.active {
		s, ok := want[k]
		if ok && s.Equal(a.sub) && p.current(a) {
			continue
		}
		stale = append(stale, a)
		delete(p.active, k)
	}
	p.mu.Unlock()

	// Stop what changed before starting its replacement, so one topic is
	// never delivered twice over by this sidecar.
	for _, a := range stale {
		p.log.Info("re-subscribing", "pubsub", a.sub.PubsubName, "topic", a.sub.Topic)
		p.stop(a, p.drainLimit)
	}

	for _, s := range desired {
		if ctx.Err() != nil {
			return
		}
		p.mu.Lock()
		_, running := p.active[s.Key()]
		p.mu.Unlock()
		if running {
			continue
		}
		a, err := p.start(ctx, s, d)
		p.mu.Lock()
		var denied *topicscope.DeniedError
		switch {
		case errors.As(err, &denied):
			// Tried again at every resync: a reload that grants the topic
			// subscribes it.
			p.reportLocked("start|"+s.Key(), "subscription not made: the pub/sub's topic scoping does not let this app subscribe to the topic; change the field named here", err,
				"pubsub", s.PubsubName, "topic", s.Topic, "app_id", denied.AppID, "field", denied.Field, "kind", s.Kind.String())
		case err != nil:
			p.reportLocked("start|"+s.Key(), "cannot subscribe yet; retrying when the component changes or becomes ready", err)
		default:
			delete(p.reported, "start|"+s.Key())
			p.active[s.Key()] = a
			p.log.Info("subscribed", "pubsub", s.PubsubName, "topic", s.Topic, "kind", s.Kind.String())
		}
		p.mu.Unlock()
	}
}

// current reports whether a's component instance is still the one the
// registry serves.
func (p *PubSub) current(a *activeSub) bool {
	cur, st, ok := p.cfg.Registry.Get(a.sub.PubsubName)
	return ok && st.State == components.StateReady && cur == a.inst
}

// start subscribes s on its component with deliveries through d. It
// returns a *topicscope.DeniedError when the component's topic scoping
// does not let this app subscribe to s.Topic.
func (p *PubSub) start(ctx context.Context, s *subscriptions.Subscription, d subscriptions.Deliverer) (*activeSub, error) {
	if p.cfg.Registry == nil {
		return nil, fmt.Errorf("subscription to %q on %q: no pub/sub components", s.Topic, s.PubsubName)
	}
	inst, release, err := p.cfg.Registry.Acquire(s.PubsubName)
	if err != nil {
		return nil, fmt.Errorf("subscription to %q on %q: %w", s.Topic, s.PubsubName, err)
	}
	scopes := p.scopes(inst)
	if err := scopes.Check(topicscope.Subscribe, p.cfg.AppID, s.Topic); err != nil {
		release()
		return nil, err
	}
	if s.DeadLetterTopic != "" {
		if err := scopes.Check(topicscope.Publish, p.cfg.AppID, s.DeadLetterTopic); err != nil {
			p.log.Warn("the subscription's dead letter topic is not allowed for this app: dropped events will be redelivered instead of dead-lettered",
				"pubsub", s.PubsubName, "topic", s.Topic, "dead_letter_topic", s.DeadLetterTopic, "error", err)
		}
	}
	maxConc, err := s.MaxConcurrency()
	if err != nil {
		release()
		return nil, err
	}
	orderingKey := s.Metadata[subscriptions.MetadataOrderingKey]
	if orderingKey != "" && !pubsub.HasFeature(inst, pubsub.FeatureMessageMetadata) {
		p.log.Warn("ordered delivery needs a broker that carries message metadata; messages are not ordered",
			"pubsub", s.PubsubName, "topic", s.Topic, "ordering_key", orderingKey)
	}
	a := &activeSub{sub: s, inst: inst, release: release, flight: newInflight()}
	bulk, _ := d.(subscriptions.BulkDeliverer)
	if s.BulkSubscribe.Enabled && bulk == nil {
		p.log.Warn("bulk subscribe is not available for this subscriber: events are delivered one at a time", "pubsub", s.PubsubName, "topic", s.Topic)
	}
	if p.cfg.Resiliency != nil {
		// Streaming subscribers too: as in Dapr, an event the stream's
		// client answers with RETRY is sent again under the policy.
		d = newInboundDeliverer(d, p.cfg.Resiliency, s.PubsubName)
		if bulk != nil {
			// Batches run under the same policy, retrying only the entries
			// the app has not settled.
			bulk, _ = d.(subscriptions.BulkDeliverer)
		}
	}
	var observe func(topic, processStatus, status string, d time.Duration)
	if rec := p.cfg.Metrics.Ingress; rec != nil {
		observe = func(topic, processStatus, status string, d time.Duration) {
			rec(s.PubsubName, topic, processStatus, status, d)
		}
	}
	proc := &subscriptions.Processor{
		Sub: s, Deliverer: d, Log: p.log, Observe: observe,
		DeadLetter: func(ctx context.Context, msg *pubsub.Message, topic string) error {
			// Dead-lettering publishes as the app: the scoping applies.
			if err := scopes.Check(topicscope.Publish, p.cfg.AppID, topic); err != nil {
				return err
			}
			return inst.Publish(ctx, &pubsub.PublishRequest{Topic: topic, Data: msg.Data, ContentType: msg.ContentType, Metadata: msg.Metadata})
		},
	}
	subCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	a.cancel = cancel
	handle := proc.Handle
	if s.BulkSubscribe.Enabled && bulk != nil {
		// Batches are sent with a context of their own: stopping fails the
		// entries not yet sent, while a batch the app has answers by its
		// verdict.
		a.batcher = subscriptions.NewBatcher(context.WithoutCancel(ctx), proc, bulk)
		if pubsub.HasFeature(inst, pubsub.FeatureBulkSubscribeImmediate) {
			a.batcher.Immediate()
		}
		handle = a.batcher.Handle
		// As in Dapr, a batch holds at most as many messages as the broker
		// hands over at once (its concurrency, or metadata maxConcurrency):
		// a broker delivering one at a time makes batches of one, each
		// sent when maxAwaitDurationMs is up.
		p.log.Info("bulk subscription", "pubsub", s.PubsubName, "topic", s.Topic, "max_concurrency", maxConc)
	}
	h := func(hctx context.Context, msg *pubsub.Message) error {
		if !a.flight.enter() {
			return errStopping
		}
		defer a.flight.leave()
		err := handle(hctx, msg)
		a.delivered.Add(1)
		a.rate.Add(time.Now())
		return err
	}
	err = inst.Subscribe(subCtx, pubsub.SubscribeRequest{
		Topic: s.Topic, Metadata: s.Metadata, MaxConcurrency: maxConc, OrderingKey: orderingKey,
	}, h)
	if err != nil {
		cancel()
		release()
		return nil, fmt.Errorf("subscribe to %q on %q: %w", s.Topic, s.PubsubName, err)
	}
	return a, nil
}

// stop ends a subscription: no new deliveries, wait (up to limit, 0 = no
// limit) for those in flight, release the component. A streaming
// subscription's deliveries waiting for the subscriber's answer give up at
// once: its stream is gone.
func (p *PubSub) stop(a *activeSub, limit time.Duration) {
	a.stopOnce.Do(func() { p.stopNow(a, limit, false) })
}

// drain stops a streaming subscription whose stream is still open (the
// sidecar is shutting down): nothing new is pulled, the subscriber may
// still answer the events it holds, and only then is OnStop called, which
// ends the stream (daprd's graceful shutdown of a stream).
func (p *PubSub) drain(a *activeSub, limit time.Duration) {
	a.stopOnce.Do(func() { p.stopNow(a, limit, true) })
}

func (p *PubSub) stopNow(a *activeSub, limit time.Duration, drainFirst bool) {
	a.cancel()
	idle := a.flight.stop()
	if a.onStop != nil && !drainFirst {
		// Only now, with the subscription cancelled, may the deliveries
		// waiting on the subscriber give up: the broker then sees them
		// fail while stopping, and leaves them unanswered.
		a.onStop()
	}
	if a.batcher != nil {
		// Entries waiting for their batch go back to the broker.
		a.batcher.Close()
	}
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-idle:
	case <-timeout:
		p.log.Warn("deliveries still running after the drain limit; their messages may be redelivered",
			"pubsub", a.sub.PubsubName, "topic", a.sub.Topic, "limit", limit.String())
	}
	if a.onStop != nil && drainFirst {
		a.onStop()
	}
	a.release()
}

// stopAll stops every subscription, in parallel, waiting for their
// deliveries (the sidecar bounds the total wait). Streaming subscriptions
// stop too, as daprd stops them when its shutdown begins: they pull
// nothing more, their subscribers may still answer the events they hold,
// then their streams end.
func (p *PubSub) stopAll() {
	p.mu.Lock()
	all := make([]*activeSub, 0, len(p.active)+len(p.streams))
	for k, a := range p.active {
		all = append(all, a)
		delete(p.active, k)
	}
	streams := make([]*activeSub, 0, len(p.streams))
	for a := range p.streams {
		streams = append(streams, a)
	}
	p.mu.Unlock()
	p.pauseBrokers(append(all, streams...))
	var wg sync.WaitGroup
	for _, a := range all {
		wg.Go(func() { p.stop(a, 0) })
	}
	for _, a := range streams {
		wg.Go(func() { p.drain(a, 0) })
	}
	wg.Wait()
	p.log.Info("subscriptions stopped", "count", len(all), "streams", len(streams))
}

// pauseTimeout bounds how long the sidecar waits for a broker to pause.
const pauseTimeout = 5 * time.Second

// pauseBrokers asks the brokers behind all that can pause to stop handing
// out messages, once each, before their subscriptions stop for good: what
// is in flight then drains and nothing new is pulled (daprd's
// pause-and-drain shutdown). A broker that cannot pause is stopped without.
func (p *PubSub) pauseBrokers(all []*activeSub) {
	seen := map[pubsub.PubSub]bool{}
	for _, a := range all {
		pauser, ok := a.inst.(pubsub.Pauser)
		if !ok || seen[a.inst] {
			continue
		}
		seen[a.inst] = true
		ctx, cancel := context.WithTimeout(context.Background(), pauseTimeout)
		err := pauser.Pause(ctx)
		cancel()
		switch {
		case errors.Is(err, pubsub.ErrPauseUnsupported):
			p.log.Debug("the broker cannot pause; stopping its subscriptions without", "pubsub", a.sub.PubsubName)
		case err != nil:
			p.log.Warn("pausing the broker failed; stopping its subscriptions without", "pubsub", a.sub.PubsubName, "error", err)
		default:
			p.log.Info("broker paused; draining the messages in flight", "pubsub", a.sub.PubsubName)
		}
	}
}

// StreamRequest opens a streaming subscription (SubscribeTopicEventsAlpha1).
type StreamRequest struct {
	PubsubName, Topic string
	Metadata          map[string]string
	DeadLetterTopic   string
	// OnStop, if set, is called when the subscription stops, after it was
	// cancelled: the place to make deliveries still waiting for the
	// subscriber's answer give up, and to end the stream. When the stream
	// ends first (stop), it is called before the deliveries are waited
	// for; when the sidecar shuts down, after them, so the subscriber can
	// still answer what it holds. It is called once.
	OnStop func()
}

// Subscribe starts a streaming subscription delivering through d. Call
// stop when the stream ends (after d stopped waiting for answers): it
// stops pulling and waits for the deliveries in flight.
func (p *PubSub) Subscribe(ctx context.Context, req StreamRequest, d subscriptions.Deliverer) (stop func(), err error) {
	// Validate with the publish API's errors; start takes its own reference.
	_, release, err := p.component(req.PubsubName, req.Topic)
	if err != nil {
		if e := apierr.From(err); e.Code == apierr.CodePubSubNotFound {
			// daprd words it differently for a stream.
			nf := *e
			nf.Message = fmt.Sprintf("pubsub %s is not found", req.PubsubName)
			return nil, &nf
		}
		return nil, err
	}
	release()
	s := &subscriptions.Subscription{
		Kind: subscriptions.Streaming, PubsubName: req.PubsubName, Topic: req.Topic,
		// Dapr gives a stream the default route "/": events carry it as
		// their path, and the metadata API lists it.
		Metadata: req.Metadata, DeadLetterTopic: req.DeadLetterTopic, Rules: []*subscriptions.Rule{{Path: "/"}},
	}
	a, err := p.start(ctx, s, d)
	var denied *topicscope.DeniedError
	switch {
	case errors.As(err, &denied):
		p.log.Warn("streaming subscription refused: the pub/sub's topic scoping does not let this app subscribe to the topic",
			"pubsub", req.PubsubName, "topic", req.Topic, "app_id", denied.AppID, "field", denied.Field, "error", err)
		return nil, apierr.PubSubForbidden(req.Topic, p.cfg.AppID, denied.Reason())
	case err != nil:
		return nil, apierr.Internal(err)
	}
	a.onStop = req.OnStop
	p.mu.Lock()
	p.streams[a] = struct{}{}
	p.mu.Unlock()
	p.log.Info("streaming subscription opened", "pubsub", req.PubsubName, "topic", req.Topic)
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			delete(p.streams, a)
			p.mu.Unlock()
			p.stop(a, p.drainLimit)
			p.log.Info("streaming subscription closed", "pubsub", req.PubsubName, "topic", req.Topic)
		})
	}, nil
}
