package proxy

import (
	"context"
	"io"
	"sync/atomic"

	"github.com/tandemrun/tandem/internal/loadreport"
	"github.com/tandemrun/tandem/invoke"
)

// Load is the sidecar's load report (internal/loadreport): each
// subscription's backlog, in-flight deliveries and delivery rate, the
// invocations of the app in flight and the active actors. The metadata
// API serves it in extended["tandem.load"] and cmd/tandemd exports it as
// metrics; the KEDA scaler reads it.
func (s *Sidecar) Load(ctx context.Context) loadreport.Report {
	r := loadreport.Report{
		AppID:               s.o.Self.AppID,
		Namespace:           s.o.Self.Namespace,
		InvocationsInFlight: s.invocations.Load(),
		Subscriptions:       []loadreport.Subscription{},
	}
	if p := s.o.APIs.PubSub; p != nil {
		r.Subscriptions = p.Load(ctx)
	}
	for _, c := range s.o.APIs.Actors.Status().GetActiveActors() {
		r.ActiveActors += int64(c.GetCount())
	}
	return r
}

// countingApp counts the invocations of the app in flight: from the call
// until the app's answer has been read (its body closed) or failed.
type countingApp struct {
	next invoke.AppChannel
	n    *atomic.Int64
}

func (c countingApp) Invoke(ctx context.Context, req *invoke.Request) (*invoke.Response, error) {
	c.n.Add(1)
	resp, err := c.next.Invoke(ctx, req)
	if err != nil || resp == nil || resp.Body == nil {
		c.n.Add(-1)
		return resp, err
	}
	resp.Body = &countedBody{ReadCloser: resp.Body, n: c.n}
	return resp, nil
}

type countedBody struct {
	io.ReadCloser
	n    *atomic.Int64
	done atomic.Bool
}

func (b *countedBody) Close() error {
	if b.done.CompareAndSwap(false, true) {
		b.n.Add(-1)
	}
	return b.ReadCloser.Close()
}
