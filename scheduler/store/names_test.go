package store

import (
	"testing"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
)

func jobMeta(ns, app string) *schedulerv1.JobMetadata {
	return &schedulerv1.JobMetadata{Namespace: ns, AppId: app,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}}
}

func actorMeta(ns, app, typ, id string) *schedulerv1.JobMetadata {
	return &schedulerv1.JobMetadata{Namespace: ns, AppId: app,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{Actor: &schedulerv1.TargetActorReminder{Type: typ, Id: id}}}}
}

// TestNamesAreDaprs: the keys are those Dapr's suite looks for in etcd.
func TestNamesAreDaprs(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{must(JobName("j1", jobMeta("ns", "app"))), "app||ns||app||j1"},
		{must(JobName("testJob", actorMeta("default-foo", "x", "test", "test"))), "actorreminder||default-foo||test||test||testJob"},
		{must(ListPrefix(actorMeta("ns", "a", "t", ""), false)), "actorreminder||ns||t||"},
		{must(ListPrefix(actorMeta("ns", "a", "t", "id"), true)), "actorreminder||ns||t||id"},
		{must(ListPrefix(jobMeta("ns", "app"), false)), "app||ns||app||"},
		{JobKey("app||ns||app||j1"), "dapr/jobs/app||ns||app||j1"},
		{CounterKey("x"), "dapr/counters/x"},
		{LeadershipKey("s0"), "dapr/leadership/s0"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
	if _, err := JobName("j", &schedulerv1.JobMetadata{Namespace: "ns", AppId: "a"}); err == nil {
		t.Error("a job without a target was named")
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

func FuzzDecodeRecords(f *testing.F) {
	f.Add([]byte(`{"uid":1,"plan":{"schedule":"@every 1s","start":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`{"jobUid":1,"count":2,"last":"2026-01-01T00:00:00Z"}`))
	if rec, err := EncodeJob(&Job{UID: 7, Job: []byte{0x0a, 0x00}, Metadata: []byte{}}); err == nil {
		f.Add([]byte(rec))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if j, err := DecodeJob(b); err == nil {
			_, _, _ = j.Decode()
		}
		_, _ = DecodeCounter(b)
		_, _ = DecodeLeader(b)
	})
}
