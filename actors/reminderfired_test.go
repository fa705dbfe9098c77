package actors

import (
	"testing"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"

	"github.com/tandemrun/tandem/actors/placement"
)

// Each reminder the scheduler triggers is reported to ReminderFired with
// its actor type and whether the actor took it: one that cannot reach its
// actor (placement never answers) is a failure, and the scheduler is told
// so.
func TestReminderFiredReported(t *testing.T) {
	type fired struct {
		typ string
		ok  bool
	}
	var got []fired
	// A placement that never answers: the actor cannot be located.
	r, err := New(Config{AppID: "app", Namespace: "default", LookupTimeout: 100 * time.Millisecond,
		Placement:     &placement.Config{Addresses: []string{"127.0.0.1:1"}, HostName: "127.0.0.1:5000", AppID: "app", Namespace: "default"},
		ReminderFired: func(typ string, ok bool) { got = append(got, fired{typ, ok}) }})
	if err != nil {
		t.Fatal(err)
	}
	s := &schedulerReminders{r: r}
	job := &schedulerv1.WatchJobsResponse{Name: "rem", Metadata: &schedulerv1.JobMetadata{AppId: "app",
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{
			Actor: &schedulerv1.TargetActorReminder{Type: "counter", Id: "1"}}}}}
	if st := s.trigger(t.Context(), job); st != schedulerv1.WatchJobsRequestResultStatus_FAILED {
		t.Errorf("trigger = %v, want FAILED", st)
	}
	if len(got) != 1 || got[0] != (fired{"counter", false}) {
		t.Errorf("ReminderFired told %v, want one failure of counter", got)
	}
}
