package resiliency

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Option configures one Do call.
type Option func(*callOptions)

type callOptions struct {
	replayable bool
	discard    func(any)
	timedOut   bool // an attempt timed out: Activated(KindTimeout) was reported
}

// Replayable says whether op can run again with the same input. Pass false
// when it consumes a stream (a request body read once): Do then makes a
// single attempt, still under the timeout and breaker. Default true.
func Replayable(ok bool) Option { return func(o *callOptions) { o.replayable = ok } }

// Discard receives the results Do drops: those of attempts that are retried
// and those that arrive after their attempt timed out. Use it to close
// response bodies. It gets the value as returned by op, also when zero.
func Discard(f func(v any)) Option { return func(o *callOptions) { o.discard = f } }

type outcome[T any] struct {
	res T
	err error
}

// Do runs op under p: retry(breaker(timeout(op))). Each attempt gets its own
// timeout; an attempt that ignores its context is abandoned at the timeout
// (its late result goes to Discard). A breaker that is open fails the call
// at once with a *BreakerOpenError and is not retried. Failed attempts are
// retried when the retry policy, Retryable, the Replayable option, the
// context's deadline and the target's retry budget all allow it. When Do
// gives up it returns the last attempt's result and error, so a response
// that came with a StatusError can still be relayed.
func Do[T any](ctx context.Context, p *Policy, op func(ctx context.Context) (T, error), opts ...Option) (T, error) {
	o := callOptions{replayable: true}
	for _, f := range opts {
		f(&o)
	}
	if p == nil {
		return op(ctx)
	}
	p.applied()
	retries := p.retry != nil && o.replayable
	if retries {
		p.budget.request()
	}
	for attempt := 1; ; attempt++ {
		res, ran, err := attemptOnce(ctx, p, op, &o)
		if err == nil {
			return res, nil
		}
		if !retries || !Retryable(err, p.retry.Matching) {
			return res, err
		}
		if ctx.Err() != nil {
			return res, giveUp(p, attempt, err, "the request's context ended")
		}
		if p.retry.MaxRetries >= 0 && attempt > p.retry.MaxRetries {
			return res, giveUp(p, attempt, err, fmt.Sprintf("retry policy %q allows %d retries", p.retry.Name, p.retry.MaxRetries))
		}
		wait := p.retry.backoff(attempt-1, p.rnd)
		if dl, ok := ctx.Deadline(); ok && time.Now().Add(wait).After(dl) {
			return res, giveUp(p, attempt, err, fmt.Sprintf("the next retry, in %s, would start after the request's deadline", wait))
		}
		if !p.budget.withdraw() {
			if p.hooks.BudgetExhausted != nil {
				p.hooks.BudgetExhausted(p.target)
			}
			return res, giveUp(p, attempt, err, "the retry budget is spent (too many retries for this target recently; it is failing broadly)")
		}
		if o.discard != nil && ran {
			o.discard(res)
		}
		if p.hooks.Retry != nil {
			p.hooks.Retry(p.target, attempt+1, err)
		}
		p.activated(KindRetry, "")
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			var zero T
			return zero, giveUp(p, attempt, errors.Join(err, ctx.Err()), "the request's context ended while waiting to retry")
		}
	}
}

func giveUp(p *Policy, attempts int, err error, why string) error {
	return fmt.Errorf("%s: gave up after %d attempt(s): %s: %w", p.target, attempts, why, err)
}

// attemptOnce runs one attempt: breaker(timeout(op)). ran reports whether
// res is op's own result (not a rejection or a timeout's zero value).
func attemptOnce[T any](ctx context.Context, p *Policy, op func(context.Context) (T, error), o *callOptions) (res T, ran bool, err error) {
	var out outcome[T]
	run := func() error {
		out.res, ran, out.err = timed(ctx, p, op, o)
		return out.err
	}
	if p.breaker == nil {
		run()
		return out.res, ran, out.err
	}
	if tb := p.typeBreaker; tb != nil {
		// Scope both: the type's breaker inside the actor's, so that an
		// actor whose own breaker is open does not count against its type,
		// and an open type rejects every actor of it.
		inner := run
		run = func() error {
			before := tb.State()
			err := tb.run(inner)
			if after := tb.State(); after != before {
				p.activated(KindBreaker, string(after))
			}
			return err
		}
	}
	before := p.breaker.State()
	err = p.breaker.run(run)
	if after := p.breaker.State(); after != before {
		p.activated(KindBreaker, string(after))
	}
	if err != nil && out.err == nil {
		var zero T
		return zero, false, err // rejected by the breaker; op did not run
	}
	return out.res, ran, out.err
}

// timed runs op with the per-attempt timeout; ran is false when the
// attempt was abandoned.
func timed[T any](ctx context.Context, p *Policy, op func(context.Context) (T, error), o *callOptions) (T, bool, error) {
	if p.timeout <= 0 {
		res, err := op(ctx)
		return res, true, err
	}
	actx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	done := make(chan outcome[T], 1)
	go func() {
		r, err := op(actx)
		done <- outcome[T]{r, err}
	}()
	select {
	case r := <-done:
		if r.err != nil && ctx.Err() == nil && errors.Is(actx.Err(), context.DeadlineExceeded) {
			return r.res, true, timeoutError(p, o, r.err)
		}
		return r.res, true, r.err
	case <-actx.Done():
		if o.discard != nil {
			go func() { o.discard((<-done).res) }()
		}
		var zero T
		if ctx.Err() != nil {
			return zero, false, ctx.Err()
		}
		return zero, false, timeoutError(p, o, context.DeadlineExceeded)
	}
}

func timeoutError(p *Policy, o *callOptions, cause error) error {
	if p.hooks.Timeout != nil {
		p.hooks.Timeout(p.target)
	}
	if !o.timedOut {
		o.timedOut = true
		p.activated(KindTimeout, "")
	}
	if !errors.Is(cause, context.DeadlineExceeded) {
		cause = errors.Join(context.DeadlineExceeded, cause)
	}
	return fmt.Errorf("%s: attempt timed out after %s (timeout policy %q): %w", p.target, p.timeout, p.timeoutName, cause)
}
