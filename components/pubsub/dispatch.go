package pubsub

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Delivery is a message a broker received, with the functions that settle
// it with the broker.
type Delivery struct {
	Msg *Message
	// Ack tells the broker the message was handled. The Dispatcher calls it
	// at most once, and only after the Handler returned nil.
	Ack func(ctx context.Context) error
	// Nack hands the message back for redelivery: the handler failed, or
	// the subscription stopped before the message was handled. It must never
	// drop or dead-letter the message. nil means do nothing (the broker
	// redelivers after its visibility timeout or on reconnect).
	Nack func(ctx context.Context, cause error) error
	// Done, when set, runs after the message was settled (or given up
	// because the subscription stopped), for the broker's own bookkeeping.
	Done func()
}

// DispatcherConfig tunes a Dispatcher.
type DispatcherConfig struct {
	// Concurrency is the most messages handled or waiting for their key at
	// once (at least 1).
	Concurrency int
	// OrderingKey is SubscribeRequest.OrderingKey.
	OrderingKey string
	// Retries is how many times a failed handler is called again in place,
	// before Nack; -1 retries until it succeeds or the subscription stops
	// (for brokers that do not redeliver within a session, like MQTT).
	// Ordered subscriptions retry at least orderedRetries times.
	Retries int
	// Backoff is the first in-place retry delay (doubled each time, up to
	// maxBackoff); 0 means 100ms.
	Backoff time.Duration
	// Log receives handler and settle failures.
	Log *slog.Logger
}

const (
	orderedRetries = 3
	maxBackoff     = 5 * time.Second
	settleTimeout  = 10 * time.Second
)

// Dispatcher runs a subscription's Handler for each Delivery a broker hands
// it, limited to Concurrency at once and, with an OrderingKey, one at a time
// per key in arrival order. Brokers call Dispatch from their single receive
// loop; it blocks while the subscription is full, so the broker stops
// pulling while handlers are busy.
type Dispatcher struct {
	ctx  context.Context
	h    Handler
	cfg  DispatcherConfig
	log  *slog.Logger
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	keys map[string][]Delivery // key -> deliveries waiting; present = key busy
	// ranPastStop: a handler returned after ctx ended.
	ranPastStop atomic.Bool
}

// NewDispatcher returns a Dispatcher for one subscription. When ctx ends the
// Dispatcher starts no new handler: deliveries not yet handled are Nacked.
func NewDispatcher(ctx context.Context, h Handler, cfg DispatcherConfig) *Dispatcher {
	if cfg.Concurrency < 1 {
		cfg.Concurrency = 1
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 100 * time.Millisecond
	}
	if cfg.OrderingKey != "" && cfg.Retries >= 0 && cfg.Retries < orderedRetries {
		cfg.Retries = orderedRetries
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{
		ctx:  ctx,
		h:    h,
		cfg:  cfg,
		log:  log,
		sem:  make(chan struct{}, cfg.Concurrency),
		keys: make(map[string][]Delivery),
	}
}

// Concurrency resolves a subscription's concurrency: the request's
// MaxConcurrency, else def, else DefaultConcurrency.
func Concurrency(req SubscribeRequest, def int) int {
	switch {
	case req.MaxConcurrency > 0:
		return req.MaxConcurrency
	case def > 0:
		return def
	default:
		return DefaultConcurrency
	}
}

// Dispatch hands dl to the handler. It blocks until there is room; when the
// subscription's context ends first it returns the context's error and dl is
// left unsettled (the caller nacks it or lets the broker redeliver it).
func (d *Dispatcher) Dispatch(dl Delivery) error {
	if err := d.ctx.Err(); err != nil {
		return err
	}
	select {
	case d.sem <- struct{}{}:
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
	d.wg.Add(1)
	key := ""
	if d.cfg.OrderingKey != "" && dl.Msg != nil {
		key = dl.Msg.Metadata[d.cfg.OrderingKey]
	}
	if key == "" {
		go d.finish(dl)
		return nil
	}
	d.mu.Lock()
	if q, busy := d.keys[key]; busy {
		d.keys[key] = append(q, dl)
		d.mu.Unlock()
		return nil
	}
	d.keys[key] = nil
	d.mu.Unlock()
	go d.runKey(key, dl)
	return nil
}

// Wait blocks until every dispatched message was handled and settled.
func (d *Dispatcher) Wait() { d.wg.Wait() }

// RanPastStop reports whether a handler was still running when the
// subscription's context ended (its message was then settled late).
func (d *Dispatcher) RanPastStop() bool { return d.ranPastStop.Load() }

// runKey handles dl and then the deliveries queued behind it for key.
func (d *Dispatcher) runKey(key string, dl Delivery) {
	for {
		d.finish(dl)
		d.mu.Lock()
		q := d.keys[key]
		if len(q) == 0 {
			delete(d.keys, key)
			d.mu.Unlock()
			return
		}
		dl = q[0]
		d.keys[key] = q[1:]
		d.mu.Unlock()
	}
}

// finish handles and settles one delivery, then frees its slot.
func (d *Dispatcher) finish(dl Delivery) {
	defer d.wg.Done()
	defer func() { <-d.sem }()
	if dl.Done != nil {
		defer dl.Done()
	}
	settleCtx, cancel := context.WithTimeout(context.WithoutCancel(d.ctx), settleTimeout)
	defer cancel()
	if err := d.ctx.Err(); err != nil {
		// Stopping: a message we have not started is given back untouched.
		d.nack(settleCtx, dl, err)
		return
	}
	err := d.handle(dl)
	if d.ctx.Err() != nil {
		d.ranPastStop.Store(true)
	}
	if err == nil {
		if dl.Ack != nil {
			if aerr := dl.Ack(settleCtx); aerr != nil {
				d.log.Warn("ack failed; the broker will redeliver the message",
					"topic", dl.Msg.Topic, "message_id", dl.Msg.ID, "error", aerr)
			}
		}
		return
	}
	d.nack(settleCtx, dl, err)
}

// handle calls the handler, retrying in place as configured.
func (d *Dispatcher) handle(dl Delivery) error {
	hctx := context.WithoutCancel(d.ctx)
	backoff := d.cfg.Backoff
	for attempt := 0; ; attempt++ {
		err := d.callHandler(hctx, dl.Msg)
		if err == nil {
			return nil
		}
		d.log.Debug("handler failed", "topic", dl.Msg.Topic, "message_id", dl.Msg.ID,
			"attempt", attempt+1, "error", err)
		if d.cfg.Retries >= 0 && attempt >= d.cfg.Retries {
			return err
		}
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-d.ctx.Done():
			t.Stop()
			return err
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// callHandler turns a handler panic into an error so one bad message does
// not take the sidecar down (the message is redelivered).
func (d *Dispatcher) callHandler(ctx context.Context, msg *Message) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	return d.h(ctx, msg)
}

func (d *Dispatcher) nack(ctx context.Context, dl Delivery, cause error) {
	if dl.Nack == nil {
		return
	}
	if err := dl.Nack(ctx, cause); err != nil {
		d.log.Warn("nack failed; the broker will redeliver the message after its timeout",
			"topic", dl.Msg.Topic, "message_id", dl.Msg.ID, "error", err)
	}
}
