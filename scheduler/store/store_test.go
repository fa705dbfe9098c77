package store

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/scheduler/schedule"
)

func testJob(t testing.TB, data []byte) *Job {
	t.Helper()
	due := "1000s"
	payload, err := anypb.New(wrapperspb.Bytes(data))
	if err != nil {
		t.Fatal(err)
	}
	repeats := uint32(3)
	plan := schedule.Plan{Schedule: "@every 1s", Start: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Repeats: &repeats}
	j, err := NewJob(42, plan, &schedulerv1.Job{DueTime: &due, Data: payload},
		&schedulerv1.JobMetadata{AppId: "app", Namespace: "default",
			Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Job{Job: new(schedulerv1.TargetJob)}}})
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// TestJobRecord: a job record reads back as written, in the wire form and
// in the JSON form earlier versions stored; a job's data is stored as
// given (not base64).
func TestJobRecord(t *testing.T) {
	data := bytes.Repeat([]byte{0x01}, 1<<20)
	want := testJob(t, data)
	wire, err := EncodeJob(want)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(wire); n > len(data)+1024 {
		t.Errorf("a record of %d bytes of data takes %d bytes", len(data), n)
	}
	legacy, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string][]byte{"wire": []byte(wire), "json": legacy, "json with space": append([]byte(" \n"), legacy...)} {
		t.Run(name, func(t *testing.T) {
			got, err := DecodeJob(rec)
			if err != nil {
				t.Fatal(err)
			}
			if got.UID != want.UID || !got.Plan.Start.Equal(want.Plan.Start) || got.Plan.Schedule != want.Plan.Schedule ||
				got.Plan.Repeats == nil || *got.Plan.Repeats != 3 {
				t.Errorf("uid %d plan %+v, want %d %+v", got.UID, got.Plan, want.UID, want.Plan)
			}
			job, meta, err := got.Decode()
			if err != nil {
				t.Fatal(err)
			}
			wjob, wmeta, _ := want.Decode()
			if !proto.Equal(job, wjob) || !proto.Equal(meta, wmeta) {
				t.Error("job or metadata differ")
			}
		})
	}
}

func TestDecodeJobMalformed(t *testing.T) {
	wire, err := EncodeJob(testJob(t, []byte("x")))
	if err != nil {
		t.Fatal(err)
	}
	for name, rec := range map[string][]byte{
		"truncated":   []byte(wire[:len(wire)-2]),
		"no plan":     {0x08, 0x01},
		"bad plan":    {0x12, 0x01, 'x'},
		"bad tag":     {0xff},
		"broken json": []byte(`{"uid":`),
	} {
		if _, err := DecodeJob(rec); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
}

func BenchmarkDecodeJob(b *testing.B) {
	rec, err := EncodeJob(testJob(b, bytes.Repeat([]byte{0x01}, 2e6)))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rec)))
	for b.Loop() {
		if _, err := DecodeJob([]byte(rec)); err != nil {
			b.Fatal(err)
		}
	}
}
