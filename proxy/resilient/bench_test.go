package resilient

import (
	"context"
	"testing"

	"github.com/tandemrun/tandem/invoke"
)

// BenchmarkInvokerOverhead measures what the decorator adds to a call
// with no Resiliency documents (Dapr's built-in retries armed).
func BenchmarkInvokerOverhead(b *testing.B) {
	body := make([]byte, 1024)
	ok := response(200, "")
	next := InvokerFunc(func(context.Context, string, *invoke.Request) (*invoke.Response, error) { return ok, nil })
	for _, bc := range []struct {
		name string
		iv   invoke.Invoker
	}{
		{"direct", next},
		{"decorated", NewInvoker(InvokerOptions{Next: next, Policies: policies(b, "").Set,
			Resolver: NewResolver(&fakeResolver{addrs: []string{"a:1"}}, ResolverOptions{})})},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bc.iv.Invoke(context.Background(), "target", request(body, false)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// InvokerFunc adapts a function to invoke.Invoker.
type InvokerFunc func(ctx context.Context, appID string, req *invoke.Request) (*invoke.Response, error)

func (f InvokerFunc) Invoke(ctx context.Context, appID string, req *invoke.Request) (*invoke.Response, error) {
	return f(ctx, appID, req)
}
