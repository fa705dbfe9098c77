package workflow

import (
	"testing"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// TestRetentionPolicyAfter: a status's own duration wins over anyTerminal,
// 0 is a duration (purge at once), and no duration keeps the instance.
func TestRetentionPolicyAfter(t *testing.T) {
	d := func(v time.Duration) *time.Duration { return &v }
	const (
		completed  = protos.OrchestrationStatus_ORCHESTRATION_STATUS_COMPLETED
		failed     = protos.OrchestrationStatus_ORCHESTRATION_STATUS_FAILED
		terminated = protos.OrchestrationStatus_ORCHESTRATION_STATUS_TERMINATED
	)
	for _, tc := range []struct {
		name   string
		p      *RetentionPolicy
		status protos.OrchestrationStatus
		want   time.Duration
		keep   bool // kept for good
	}{
		{"no policy", nil, completed, 0, true},
		{"empty policy", &RetentionPolicy{}, failed, 0, true},
		{"any terminal", &RetentionPolicy{AnyTerminal: d(time.Hour)}, terminated, time.Hour, false},
		{"own status wins", &RetentionPolicy{AnyTerminal: d(5 * time.Second), Completed: d(0)}, completed, 0, false},
		{"other status falls back", &RetentionPolicy{AnyTerminal: d(5 * time.Second), Completed: d(0)}, failed, 5 * time.Second, false},
		{"only another status", &RetentionPolicy{Failed: d(time.Second)}, completed, 0, true},
		{"terminated", &RetentionPolicy{Terminated: d(time.Second), Failed: d(time.Hour)}, terminated, time.Second, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tc.p.after(tc.status)
			if ok == tc.keep || got != tc.want {
				t.Errorf("after(%s) = %v, %v; want %v, purge %v", statusName(tc.status), got, ok, tc.want, !tc.keep)
			}
		})
	}
}

// TestCompletedAt: the retention clock starts at the instance's end, not
// at whatever time the reminder is stored (again).
func TestCompletedAt(t *testing.T) {
	end := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	done := &protos.HistoryEvent{Timestamp: timestamppb.New(end), EventType: &protos.HistoryEvent_ExecutionCompleted{ExecutionCompleted: &protos.ExecutionCompletedEvent{}}}
	inst := &instance{history: []*protos.HistoryEvent{started("w"), done}}
	if got := inst.completedAt(); !got.Equal(end) {
		t.Errorf("completedAt = %v, want %v", got, end)
	}
	if got := (&instance{history: []*protos.HistoryEvent{started("w")}}).completedAt(); !got.IsZero() {
		t.Errorf("running instance completedAt = %v", got)
	}
}
