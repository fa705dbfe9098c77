package subscriptions

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components/pubsub"
)

// ErrBatcherClosed is returned (wrapped) for messages that were waiting in
// a batch, or arrived, when the subscription stopped: the broker
// redelivers them.
var ErrBatcherClosed = errors.New("bulk subscription is stopping; the message will be redelivered")

// Batcher delivers a bulk subscription's messages to the app in batches.
// Brokers hand messages over one by one through a pubsub.Handler that
// must return only once its message is settled, so Handle enqueues the
// message and waits for its entry's verdict. A batch goes to the app when
// it holds maxMessages entries or maxAwait after its first entry. The
// broker must allow at least maxMessages concurrent handlers for a batch
// to fill (pubsub.SubscribeRequest.MaxConcurrency).
type Batcher struct {
	proc        *Processor
	deliverer   BulkDeliverer
	ctx         context.Context
	maxMessages int
	maxAwait    time.Duration

	mu      sync.Mutex
	pending []*bulkItem
	gen     uint64 // counts taken batches, so a late timer leaves the next one alone
	timer   *time.Timer
	closed  bool
}

type bulkItem struct {
	entry BulkEntry
	done  chan bulkResult // buffered: the verdict never blocks its sender
}

type bulkResult struct {
	st  Status
	err error
}

// NewBatcher returns a Batcher for p's subscription delivering through d.
// ctx bounds the calls to the app (not the waiting handlers); batch limits
// come from p.Sub.BulkLimits.
func NewBatcher(ctx context.Context, p *Processor, d BulkDeliverer) *Batcher {
	maxMessages, maxAwait := p.Sub.BulkLimits()
	return &Batcher{proc: p, deliverer: d, ctx: ctx, maxMessages: maxMessages, maxAwait: maxAwait}
}

// Immediate makes b send every message at once in a batch of its own, for
// brokers with pubsub.FeatureBulkSubscribeImmediate. Call it before Handle.
func (b *Batcher) Immediate() *Batcher {
	b.maxMessages = 1
	return b
}

// Handle is a pubsub.Handler: nil when the app accepted (or dropped, or has
// no handler for) the message's entry, an error when the entry is to be
// redelivered. Messages that need no delivery (expired, unrouted) are
// settled at once, as by Processor.Handle.
func (b *Batcher) Handle(ctx context.Context, msg *pubsub.Message) error {
	m, settled, err := b.proc.prepare(ctx, msg)
	if settled {
		return err
	}
	it := &bulkItem{done: make(chan bulkResult, 1), entry: BulkEntry{EntryID: newEntryID(), Message: m, ContentType: msg.ContentType}}
	if b.proc.Sub.RawPayload() {
		it.entry.Raw = msg.Data
		if it.entry.Raw == nil {
			it.entry.Raw = []byte{}
		}
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return ErrBatcherClosed
	}
	b.pending = append(b.pending, it)
	var full []*bulkItem
	switch {
	case len(b.pending) >= b.maxMessages:
		full = b.takeLocked()
	case len(b.pending) == 1:
		gen := b.gen
		b.timer = time.AfterFunc(b.maxAwait, func() { b.onTimer(gen) })
	}
	b.mu.Unlock()
	if full != nil {
		b.flush(full)
	}

	select {
	case r := <-it.done:
		return b.proc.settle(ctx, msg, m, r.st, r.err)
	case <-ctx.Done():
		if b.remove(it) {
			return ctx.Err()
		}
		// Already sent: the app's verdict is on its way.
		r := <-it.done
		return b.proc.settle(context.WithoutCancel(ctx), msg, m, r.st, r.err)
	}
}

// Close fails the entries not yet sent with ErrBatcherClosed (they are
// redelivered, never acknowledged) and refuses new ones. Batches already
// sent finish by the app's verdict.
func (b *Batcher) Close() {
	b.mu.Lock()
	b.closed = true
	items := b.takeLocked()
	b.mu.Unlock()
	for _, it := range items {
		it.done <- bulkResult{st: Retry, err: ErrBatcherClosed}
	}
}

// takeLocked empties the pending batch and stops its timer.
func (b *Batcher) takeLocked() []*bulkItem {
	items := b.pending
	b.pending = nil
	b.gen++
	if b.timer != nil {
		b.timer.Stop()
		b.timer = nil
	}
	return items
}

func (b *Batcher) onTimer(gen uint64) {
	b.mu.Lock()
	if gen != b.gen {
		b.mu.Unlock()
		return
	}
	items := b.takeLocked()
	b.mu.Unlock()
	b.flush(items)
}

// remove takes it out of the pending batch; false when it was sent.
func (b *Batcher) remove(it *bulkItem) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, p := range b.pending {
		if p == it {
			b.pending = append(b.pending[:i], b.pending[i+1:]...)
			return true
		}
	}
	return false
}

// flush delivers items, one call per route (in parallel), and hands every
// entry its verdict.
func (b *Batcher) flush(items []*bulkItem) {
	if len(items) == 0 {
		return
	}
	var order []string
	byPath := make(map[string][]*bulkItem)
	for _, it := range items {
		p := it.entry.Message.Path
		if _, ok := byPath[p]; !ok {
			order = append(order, p)
		}
		byPath[p] = append(byPath[p], it)
	}
	var wg sync.WaitGroup
	for _, path := range order {
		wg.Go(func() { b.deliver(path, byPath[path]) })
	}
	wg.Wait()
}

func (b *Batcher) deliver(path string, items []*bulkItem) {
	sub := b.proc.Sub
	bm := &BulkMessage{
		Topic: sub.Topic, PubsubName: sub.PubsubName, Path: path,
		Metadata: map[string]string{MetadataKeyPubSub: sub.PubsubName},
		Entries:  make([]BulkEntry, len(items)),
	}
	for i, it := range items {
		bm.Entries[i] = it.entry
	}
	sts, err := b.deliverer.DeliverBulk(b.ctx, bm)
	if err != nil {
		b.proc.log().Debug("bulk delivery not fully successful", "pubsub", sub.PubsubName, "topic", sub.Topic,
			"path", path, "entries", len(items), "error", err)
	}
	for i, it := range items {
		st := Retry
		if i < len(sts) {
			st = sts[i]
		}
		var eerr error
		if st == Retry || st == Discard {
			eerr = err
		}
		it.done <- bulkResult{st: st, err: eerr}
	}
}
