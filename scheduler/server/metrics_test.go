package server

import (
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// A latency a fraction of a millisecond above a bucket's bound is counted
// above that bucket, as Dapr's OpenCensus views count its whole milliseconds
// (Dapr's suite checks it: scheduler/metrics/triggerlatency, an app that
// sleeps exactly a second).
func TestTriggerLatencyBucketsAsDapr(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	actor := &schedulerv1.JobMetadata{Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{
		Actor: &schedulerv1.TargetActorReminder{Type: "t", Id: "1"}}}}
	job := &schedulerv1.JobMetadata{Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{
		Job: &schedulerv1.TargetJob{}}}}
	m.Triggered(actor, 1000*time.Millisecond+400*time.Microsecond)
	m.Triggered(actor, 999*time.Millisecond)
	m.Failed(actor, 20*time.Second)
	m.Triggered(job, 500*time.Millisecond+250*time.Microsecond)
	m.Triggered(job, 500*time.Microsecond)

	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]map[float64]uint64{}
	counts, sums := map[string]uint64{}, map[string]float64{}
	for _, f := range families {
		if f.GetName() != "dapr_scheduler_trigger_latency" {
			continue
		}
		for _, s := range f.GetMetric() {
			label := s.GetLabel()[0].GetValue()
			h := s.GetHistogram()
			got[label] = map[float64]uint64{}
			for _, b := range h.GetBucket() {
				got[label][b.GetUpperBound()] = b.GetCumulativeCount()
			}
			counts[label], sums[label] = h.GetSampleCount(), h.GetSampleSum()
		}
	}
	want := map[string]map[float64]uint64{
		"actor": {0: 0, 100: 0, 500: 0, 1000: 1, 5000: 2, 10000: 2},
		"job":   {0: 0, 100: 1, 500: 1, 1000: 2, 5000: 2, 10000: 2},
	}
	for label, buckets := range want {
		for b, n := range buckets {
			if got[label][b] != n {
				t.Errorf("%s le=%v: %d, want %d (all: %v)", label, b, got[label][b], n, got[label])
			}
		}
	}
	if counts["actor"] != 3 || sums["actor"] != 1000.4+999+20000 {
		t.Errorf("actor count %d sum %v, want 3 and 21999.4", counts["actor"], sums["actor"])
	}
	if counts["job"] != 2 || sums["job"] != 500.25+0.5 {
		t.Errorf("job count %d sum %v, want 2 and 500.75", counts["job"], sums["job"])
	}
}
