package resilient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"

	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/resiliency"
)

// DefaultReplayLimit is the largest request body (of known size) the
// Invoker buffers so that it can be sent again on a retry. Larger and
// streamed bodies are attempted once.
const DefaultReplayLimit = 4 << 20

// InvokerOptions configure NewInvoker.
type InvokerOptions struct {
	// Next makes the calls (an *invoke.Client).
	Next invoke.Invoker
	// Policies returns the resiliency.Set in effect; it is called per
	// invocation, so a hot reload applies to the next call. Nil, or a nil
	// Set, means no policies and no built-in retries.
	Policies func() *resiliency.Set
	// Resolver, when it is the resolver Next uses, gets every call's
	// outcome per instance (outlier ejection) and lets the invoker's own
	// transport retry count against the policy. Nil: neither.
	Resolver *Resolver
	// ReplayLimit bounds buffered request bodies (DefaultReplayLimit if 0).
	ReplayLimit int64
	Log         *slog.Logger
}

// ResilientInvoker runs each invocation under the Resiliency policy for
// the target app, or, when no policy names it, Dapr's built-in
// sidecar-to-sidecar retries (DaprBuiltInServiceRetries: a peer that is
// unreachable or refuses the certificate, retried 3 times 1s apart).
//
// With a policy, an answer with a failure status (HTTP outside 200-399, a
// gRPC code other than OK) is a *resiliency.StatusError for the retry
// decision and the breaker (as in daprd, every failure is retried unless
// the policy's matching lists say otherwise; 4xx other than 408 and 429
// are not counted against the app by the breaker); when the policy gives up,
// the last answer is relayed as is, status and body. The built-in retries
// never retry an answer, only transport failures.
type ResilientInvoker struct {
	o   InvokerOptions
	log *slog.Logger
}

var _ invoke.Invoker = (*ResilientInvoker)(nil)

// NewInvoker returns the decorator.
func NewInvoker(o InvokerOptions) *ResilientInvoker {
	if o.ReplayLimit <= 0 {
		o.ReplayLimit = DefaultReplayLimit
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &ResilientInvoker{o: o, log: o.Log}
}

// errUnreachable stands for the transport failure that made the invoker
// retry on another instance; it is what that instance is reported with.
var errUnreachable = status.Error(codes.Unavailable, "sidecar unreachable")

// Invoke implements invoke.Invoker.
func (iv *ResilientInvoker) Invoke(ctx context.Context, target string, req *invoke.Request) (*invoke.Response, error) {
	var set *resiliency.Set
	if iv.o.Policies != nil {
		set = iv.o.Policies()
	}
	appID, _, err := invoke.SplitAppID(target, "")
	if set == nil || err != nil || req == nil {
		return iv.once(ctx, target, req)
	}
	builtIn := false
	p := set.ForApp(appID)
	if p == nil {
		p = set.BuiltIn(resiliency.BuiltInServiceRetries)
		builtIn = true
	}
	if p == nil {
		return iv.once(ctx, target, req)
	}
	retry := p.Retry()

	// Buffer the body once when a retry may need it again. The built-in
	// retries only replay what the invoker sends unary anyway.
	limit := iv.o.ReplayLimit
	if builtIn {
		limit = invoke.UnaryLimit
	}
	var body []byte
	replayable := retry != nil && (req.Body == nil || req.ContentLength == 0 ||
		(req.ContentLength > 0 && req.ContentLength <= limit))
	if replayable {
		// A body in memory already is taken as it is (not changed while
		// in use).
		var err error
		if body, err = req.Bytes(); err != nil {
			return nil, err
		}
	}

	c := &call{iv: iv, ctx: ctx, target: target, req: req, body: body, builtIn: builtIn, timeout: p.Timeout() > 0,
		buffered: replayable && body != nil, maxRPCs: -1}
	if retry != nil && retry.MaxRetries >= 0 {
		c.maxRPCs = int64(retry.MaxRetries) + 1
	}
	resp, err := resiliency.Do(ctx, p, c.attempt,
		resiliency.Replayable(replayable),
		resiliency.Discard(func(v any) {
			r, _ := v.(*invoke.Response)
			closeBody(r)
		}))
	if err == nil {
		return resp, nil
	}
	var se *resiliency.StatusError
	if resp != nil && errors.As(err, &se) {
		// The app answered: relay its last answer rather than an error.
		iv.log.Debug("invocation failed after resiliency policy; relaying the last answer",
			"app_id", target, "target", p.Target(), "error", err)
		return resp, nil
	}
	closeBody(resp)
	return nil, err
}

func closeBody(r *invoke.Response) {
	if r != nil && r.Body != nil {
		_ = r.Body.Close()
	}
}

// once makes a single call with no policy, still reporting the outcome
// per instance.
func (iv *ResilientInvoker) once(ctx context.Context, target string, req *invoke.Request) (*invoke.Response, error) {
	if iv.o.Resolver == nil {
		return iv.o.Next.Invoke(ctx, target, req)
	}
	rec := &recorder{}
	resp, err := iv.o.Next.Invoke(withRecorder(ctx, rec), target, req)
	iv.report(rec, resp, err)
	return resp, err
}

// call is one invocation's state across its attempts.
type call struct {
	iv       *ResilientInvoker
	ctx      context.Context // the caller's
	target   string
	req      *invoke.Request
	body     []byte
	buffered bool
	builtIn  bool
	timeout  bool

	attempts atomic.Int64
	rpcs     atomic.Int64 // instances tried, the invoker's own retries included
	maxRPCs  int64        // -1: no limit
}

// attempt is the operation Do runs.
func (c *call) attempt(actx context.Context) (*invoke.Response, error) {
	n := c.attempts.Add(1)
	req := c.req
	if n > 1 || c.buffered {
		// A fresh body reader per attempt; and from the second attempt a
		// copy of the message, because an abandoned (timed out) attempt
		// may still be using the first.
		r := *c.req
		if c.buffered {
			r.Body = invoke.NewMemBody(c.body)
		}
		if n > 1 {
			r.Message = proto.Clone(c.req.Message).(*internalsv1.InternalInvokeRequest)
		}
		req = &r
	}

	ctx, cancel, stop := actx, context.CancelFunc(nil), func() bool { return true }
	if c.timeout {
		// Do cancels the attempt's context as soon as the attempt returns,
		// which would cut a streamed response body. So call on a context
		// of the caller's that the attempt timeout cancels only while the
		// call is being made; the body's Close releases it afterwards.
		ctx, cancel = context.WithCancel(c.ctx)
		stop = context.AfterFunc(actx, cancel)
	}
	rec := &recorder{}
	resp, err := c.iv.o.Next.Invoke(withRecorder(ctx, rec), c.target, req)
	if cancel != nil {
		if !stop() && err == nil {
			// Timed out just as the answer came: Do has given up on it.
			closeBody(resp)
			resp, err = nil, actx.Err()
		}
		if err == nil && resp != nil && resp.Body != nil {
			resp.Body = &cancelOnClose{ReadCloser: resp.Body, cancel: cancel}
		} else {
			cancel()
		}
	}
	c.iv.report(rec, resp, err)
	total := c.rpcs.Add(max(int64(rec.len()), 1))

	if err != nil {
		if c.builtIn && !builtInRetryable(err) {
			return nil, resiliency.Permanent(err)
		}
		// The invoker retries an unreachable instance once by itself; that
		// try counts against maxRetries, so retries are not doubled.
		if c.maxRPCs > 0 && total > n && total >= c.maxRPCs {
			return nil, resiliency.Permanent(fmt.Errorf("%w (%d instances tried, retries included)", err, total))
		}
		return nil, err
	}
	if c.builtIn {
		return resp, nil // built-in retries never retry an app's answer
	}
	if se := statusError(resp); se != nil {
		return resp, se
	}
	return resp, nil
}

// report tells the Resolver how each instance tried in one attempt did:
// every instance but the last was unreachable (that is why the invoker
// moved on); the last gave the attempt's outcome.
func (iv *ResilientInvoker) report(rec *recorder, resp *invoke.Response, err error) {
	if iv.o.Resolver == nil {
		return
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	picks := rec.picks
	for i, p := range picks {
		outcome := errUnreachable
		if i == len(picks)-1 {
			outcome = err
			if err == nil {
				if se := statusError(resp); se != nil {
					outcome = se
				}
			}
		}
		iv.o.Resolver.Report(p.req, p.addr, outcome)
	}
}

// builtInRetryable reports the errors DaprBuiltInServiceRetries retries:
// the peer sidecar unreachable or refusing our certificate.
func builtInRetryable(err error) bool {
	switch status.Code(err) {
	case codes.Unavailable, codes.Unauthenticated:
		return true
	}
	return false
}

// statusError describes a failure answer of the app, nil for success.
func statusError(resp *invoke.Response) *resiliency.StatusError {
	if resp == nil || resp.Message == nil {
		return nil
	}
	code := int(resp.Message.GetStatus().GetCode())
	if resp.IsHTTP() {
		// As daprd: any status outside 200-399 is a failure answer.
		if code < 200 || code > 399 {
			return &resiliency.StatusError{HTTP: code}
		}
		return nil
	}
	if code != int(codes.OK) {
		return &resiliency.StatusError{GRPC: codes.Code(code), Err: errors.New(resp.Message.GetStatus().GetMessage())}
	}
	return nil
}

// cancelOnClose releases a response's call context when its body is closed.
type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}
