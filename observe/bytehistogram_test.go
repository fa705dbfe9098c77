package observe

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestByteHistogramBucketsAsDapr: a size equal to a bound is counted above
// it, as daprd's OpenCensus view counts it (value < bound); the exported
// bounds, labels, count and sum are the nominal ones.
func TestByteHistogramBucketsAsDapr(t *testing.T) {
	v := newByteHistogramVec("dapr_http_server_request_bytes", "sizes", []string{"app_id", "method"})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(v)
	for _, n := range []float64{0, 1023, 1024, 1025, 2048, 4294967296} {
		v.WithLabelValues("a", "POST").Observe(n)
	}
	v.WithLabelValues("b", "GET").Observe(1024)

	mfs, err := reg.Gather() // the pedantic registry checks each metric against Describe
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		if mf.GetName() != "dapr_http_server_request_bytes" {
			continue
		}
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			var b strings.Builder
			for _, bk := range h.GetBucket() {
				fmt.Fprintf(&b, "%g:%d ", bk.GetUpperBound(), bk.GetCumulativeCount())
			}
			fmt.Fprintf(&b, "count=%d sum=%g", h.GetSampleCount(), h.GetSampleSum())
			got[labelString(m)] = b.String()
		}
	}
	// Cumulative counts: below 1024 are 0 and 1023; below 2048 also 1024
	// and 1025; 2048 itself only from 4096 on; 2^32 only in +Inf.
	tail := func(n int) string {
		return fmt.Sprintf("16384:%[1]d 65536:%[1]d 262144:%[1]d 1.048576e+06:%[1]d 4.194304e+06:%[1]d 1.6777216e+07:%[1]d 6.7108864e+07:%[1]d 2.68435456e+08:%[1]d 1.073741824e+09:%[1]d 4.294967296e+09:%[1]d ", n)
	}
	want := map[string]string{
		"app_id=a,method=POST": "1024:2 2048:4 4096:5 " + tail(5) + "count=6 sum=4.294972416e+09",
		"app_id=b,method=GET":  "1024:0 2048:1 4096:1 " + tail(1) + "count=1 sum=1024",
	}
	if len(got) != len(want) {
		t.Fatalf("series = %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s:\n got %s\nwant %s", k, got[k], w)
		}
	}
}
