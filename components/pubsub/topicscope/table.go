package topicscope

import (
	"context"
	"log/slog"
	"sync"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Table remembers the scopes of every pub/sub instance its Kind
// initialised, so the API decides with the scopes of the very instance it
// publishes or subscribes on: a hot reload that changes the fields takes
// effect exactly when the new instance starts serving.
type Table struct {
	log *slog.Logger
	mu  sync.RWMutex
	// byInst is keyed by the instance; brokers are pointers.
	byInst map[pubsub.PubSub]*Scopes
}

// NewTable returns an empty table logging to log (nil: discard).
func NewTable(log *slog.Logger) *Table {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Table{log: log, byInst: map[pubsub.PubSub]*Scopes{}}
}

// Kind returns k with an Init that parses the scoping fields, hands the
// broker its metadata without them (no broker sees, or rejects, them),
// and records the scopes once the broker is ready; Close forgets them.
func (t *Table) Kind(k components.Kind[pubsub.PubSub]) components.Kind[pubsub.PubSub] {
	initFn, closeFn := k.Init, k.Close
	k.Init = func(ctx context.Context, ps pubsub.PubSub, md components.Metadata) error {
		s := Parse(md)
		md.Properties = Strip(md.Properties)
		if err := initFn(ctx, ps, md); err != nil {
			return err
		}
		if s == nil {
			return nil
		}
		for _, why := range s.Ignored() {
			t.log.Warn("pub/sub topic scoping: part of the component's metadata is ignored", "pubsub", md.Name, "problem", why)
		}
		t.log.Info("pub/sub topic scoping in effect", "pubsub", md.Name,
			"publishing_scopes", len(s.publish), "subscription_scopes", len(s.subscribe),
			"allowed_topics", s.allowed != nil, "protected_topics", len(s.protected))
		t.mu.Lock()
		t.byInst[ps] = s
		t.mu.Unlock()
		return nil
	}
	k.Close = func(ps pubsub.PubSub) error {
		t.mu.Lock()
		delete(t.byInst, ps)
		t.mu.Unlock()
		if closeFn == nil {
			return nil
		}
		return closeFn(ps)
	}
	return k
}

// Of returns the scopes of an instance made by the table's Kind; nil (no
// restriction) for one without scoping fields.
func (t *Table) Of(ps pubsub.PubSub) *Scopes {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.byInst[ps]
}
