package client

import (
	"context"
	"errors"
	"sync"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Watch says what Follow does with one kind. Its callbacks are never
// called concurrently.
type Watch struct {
	Kind Kind
	// Snapshot, if set, gets every resource of the kind each time the
	// update stream has been opened (again) and every Resync, so that the
	// receiver can reconcile what it holds with what the operator has,
	// including changes made while the stream was down. Nil: the kind is
	// not listed, only streamed (daprd lists no Configurations).
	Snapshot func([]Resource)
	// Event gets every change the operator streams.
	Event func(Event)
	// Started, if set, is called once, when the stream is first open.
	Started func()
	// Resync, if positive, lists the kind this often as a backup of the
	// stream (daprd's --hot-reload-reconcile-interval).
	Resync time.Duration
	// Resyncing, if set, is called at each Resync tick, before the
	// listing.
	Resyncing func()
}

// Follow follows one kind until ctx ends, and returns nil then. It never
// gives up: a stream that cannot be opened, or that breaks, is opened
// again after a backoff (Config.ReconnectMin doubling up to
// Config.ReconnectMax), and listed again. An operator that does not
// implement the stream is logged, once, as daprd does, and Follow waits for
// ctx.
func (c *Client) Follow(ctx context.Context, w Watch) error {
	log := c.cfg.Log.With("kind", string(w.Kind))
	wait := c.cfg.ReconnectMin
	connected := false
	for {
		opened, err := c.session(ctx, w, &connected)
		if ctx.Err() != nil {
			return nil
		}
		if status.Code(err) == codes.Unimplemented {
			log.Warn(string(w.Kind) + " HotReloading is not supported by the Dapr control plane. " + string(w.Kind) + " updates will not be Hot Reloaded.")
			<-ctx.Done()
			return nil
		}
		if opened {
			wait = c.cfg.ReconnectMin
			log.Error("Error from operator stream: "+errText(err), "operator", c.cfg.Address)
		} else {
			log.Error("Failed to establish stream: "+errText(err), "operator", c.cfg.Address, "retry_in", wait.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, c.cfg.ReconnectMax)
	}
}

func errText(err error) string {
	if err == nil {
		return "stream closed by the operator"
	}
	return err.Error()
}

type received struct {
	raw []byte
	typ operatorv1.ResourceEventType
	err error
}

// session opens the stream once, lists, and hands on events until the
// stream breaks (the error) or ctx ends. opened reports whether the stream
// was open and listed, i.e. the operator was reachable.
func (c *Client) session(ctx context.Context, w Watch, connected *bool) (opened bool, err error) {
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	recv, err := c.open(sctx, w.Kind)
	if err != nil {
		return false, err
	}
	// One goroutine receives, so that events and snapshots are handed on
	// from this one, in order.
	events := make(chan received)
	wg.Go(func() {
		for {
			raw, typ, err := recv()
			select {
			case events <- received{raw, typ, err}:
			case <-sctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	})
	if *connected {
		c.cfg.Log.Info("Reconnected to operator", "kind", string(w.Kind))
	}
	if w.Snapshot != nil {
		list, err := c.ListOnce(sctx, w.Kind)
		if err != nil {
			return false, err
		}
		w.Snapshot(list)
	}
	if !*connected {
		*connected = true
		if w.Started != nil {
			w.Started()
		}
	}
	var tick <-chan time.Time
	if w.Resync > 0 && w.Snapshot != nil {
		t := time.NewTicker(w.Resync)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return true, nil
		case r := <-events:
			if r.err != nil {
				return true, r.err
			}
			res, err := decode(w.Kind, r.raw)
			if err != nil {
				return true, errors.Join(err, errors.New("listing again"))
			}
			if typ := eventType(r.typ); typ != 0 && w.Event != nil {
				w.Event(Event{Type: typ, Resource: res})
			}
		case <-tick:
			if w.Resyncing != nil {
				w.Resyncing()
			}
			list, err := c.ListOnce(sctx, w.Kind)
			if err != nil {
				c.cfg.Log.Warn("scheduled reconcile: "+err.Error(), "kind", string(w.Kind))
				continue
			}
			w.Snapshot(list)
		}
	}
}
