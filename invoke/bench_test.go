package invoke

import (
	"bytes"
	"context"
	"io"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// BenchmarkInvokeUnary measures one 1 KiB CallLocal through both sidecars
// (caller Client and callee Server, mTLS, in one process). cpu-ns/op is
// the process CPU time per call, the figure to compare with the 0.15 ms
// budget for two sidecars.
func BenchmarkInvokeUnary(b *testing.B) {
	p := newPair(b, true)
	body := bytes.Repeat([]byte("x"), 1024)
	md := map[string]*internalsv1.ListStringValue{"content-type": {Values: []string{"text/plain"}}}
	ctx := context.Background()
	// Warm the connection.
	if _, err := p.inv.Invoke(ctx, "server", newReq("echo", commonv1.HTTPExtension_POST, "", body, 1024, nil)); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	cpu0 := processCPU()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rd := bytes.NewReader(nil)
		for pb.Next() {
			rd.Reset(body)
			req := &Request{
				Message: &internalsv1.InternalInvokeRequest{
					Metadata: md,
					Message: &commonv1.InvokeRequest{
						Method:        "echo",
						ContentType:   "text/plain",
						HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST},
					},
				},
				Body:          rd,
				ContentLength: int64(len(body)),
			}
			req.Message.Metadata = map[string]*internalsv1.ListStringValue{"content-type": md["content-type"]}
			resp, err := p.inv.Invoke(ctx, "server", req)
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.StopTimer()
	if cpu := processCPU(); cpu > 0 {
		b.ReportMetric(float64(cpu-cpu0)/float64(b.N), "cpu-ns/op")
	}
}
