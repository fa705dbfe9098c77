package actors

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/actors/schedule"
	"github.com/tandemrun/tandem/jobs"
)

// ReminderStore keeps actor reminders and has them fire: the actor state
// store (Tandem's firing loop over Dapr's "actors||{type}" layout), or
// the scheduler, as daprd does when --scheduler-host-address is set. The
// Runtime checks the actor type first; a store only stores.
type ReminderStore interface {
	Create(ctx context.Context, req ReminderRequest) error
	// Get returns the reminder, or an error wrapping ErrReminderNotFound.
	Get(ctx context.Context, actorType, actorID, name string) (*Reminder, error)
	// Delete removes a reminder; a missing one is not an error.
	Delete(ctx context.Context, actorType, actorID, name string) error
	// List returns the reminders of a type, of one actor of it when
	// actorID is set.
	List(ctx context.Context, actorType string, actorID *string) ([]Reminder, error)
	// DeleteByActor removes the reminders List would return.
	DeleteByActor(ctx context.Context, actorType string, actorID *string) error
}

var (
	_ ReminderStore = stateReminders{}
	_ ReminderStore = (*schedulerReminders)(nil)
)

// schedulerReminders keeps reminders as scheduler jobs whose target is the
// actor; the scheduler triggers them on a sidecar that hosts the type,
// which routes each to the actor's owner (trigger).
type schedulerReminders struct {
	r     *Runtime
	sched *jobs.Scheduler
}

func (s *schedulerReminders) metadata(actorType, actorID string) *schedulerv1.JobMetadata {
	return &schedulerv1.JobMetadata{
		AppId: s.r.cfg.AppID, Namespace: s.r.cfg.Namespace,
		Target: &schedulerv1.JobTargetMetadata{Type: &schedulerv1.JobTargetMetadata_Actor{
			Actor: &schedulerv1.TargetActorReminder{Type: actorType, Id: actorID},
		}},
	}
}

// scheduleFromPeriod turns a reminder period into a job schedule, as
// daprd: "@every <duration>" and the repetitions; periods in years,
// months or days cannot be a job.
func scheduleFromPeriod(period string) (*string, *uint32, error) {
	if period == "" {
		return nil, nil, nil
	}
	p, err := schedule.ParsePeriod(period)
	if err != nil || p.Years != 0 || p.Months != 0 || p.Days != 0 {
		return nil, nil, &FieldError{Field: "period", Err: fmt.Errorf("unsupported period format: %s", period)}
	}
	every := "@every " + p.Every.String()
	var repeats *uint32
	if p.Repeats > 0 {
		n := uint32(p.Repeats)
		repeats = &n
	}
	return &every, repeats, nil
}

func (s *schedulerReminders) Create(ctx context.Context, req ReminderRequest) error {
	every, repeats, err := scheduleFromPeriod(req.Period)
	if err != nil {
		return err
	}
	job := &schedulerv1.Job{Schedule: every, Repeats: repeats, FailurePolicy: req.FailurePolicy}
	if req.DueTime != "" {
		job.DueTime = &req.DueTime
	}
	if req.TTL != "" {
		job.Ttl = &req.TTL
	}
	if job.Data, err = req.jobData(); err != nil {
		return err
	}
	overwrite := req.Overwrite == nil || *req.Overwrite
	md := s.metadata(req.ActorType, req.ActorID)
	md.ConcurrencyKey = req.ConcurrencyKey
	err = s.schedule(ctx, &schedulerv1.ScheduleJobRequest{
		Name: req.Name, Overwrite: overwrite, Job: job, Metadata: md,
	})
	if status.Code(err) == codes.AlreadyExists {
		return fmt.Errorf("%w: %s", ErrReminderExists, req.Name)
	}
	return err
}

func (s *schedulerReminders) schedule(ctx context.Context, req *schedulerv1.ScheduleJobRequest) error {
	_, err := jobs.Call(ctx, s.sched, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.ScheduleJobResponse, error) {
		return c.ScheduleJob(ctx, req, grpc.WaitForReady(true))
	})
	if status.Code(err) == codes.InvalidArgument {
		return &FieldError{Field: "reminder", Err: errors.New(status.Convert(err).Message())}
	}
	return err
}

func (s *schedulerReminders) Get(ctx context.Context, actorType, actorID, name string) (*Reminder, error) {
	resp, err := jobs.Call(ctx, s.sched, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.GetJobResponse, error) {
		return c.GetJob(ctx, &schedulerv1.GetJobRequest{Name: name, Metadata: s.metadata(actorType, actorID)}, grpc.WaitForReady(true))
	})
	if status.Code(err) == codes.NotFound {
		return nil, fmt.Errorf("%w: %s", ErrReminderNotFound, name)
	}
	if err != nil {
		return nil, err
	}
	rem := jobReminder(name, actorType, actorID, resp.GetJob())
	return &rem, nil
}

// jobReminder is a reminder job as daprd reads it back: its schedule is
// the period ("@every 1s") and its ttl, when it is a time, the expiry.
func jobReminder(name, actorType, actorID string, job *schedulerv1.Job) Reminder {
	rem := Reminder{Name: name, ActorType: actorType, ActorID: actorID, Data: job.GetData(), DueTime: job.GetDueTime(), Period: job.GetSchedule()}
	if t, err := time.Parse(time.RFC3339Nano, job.GetTtl()); err == nil {
		rem.TTL = t.Format(time.RFC3339Nano)
	}
	return rem
}

func (s *schedulerReminders) List(ctx context.Context, actorType string, actorID *string) ([]Reminder, error) {
	resp, err := jobs.Call(ctx, s.sched, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.ListJobsResponse, error) {
		return c.ListJobs(ctx, &schedulerv1.ListJobsRequest{Metadata: s.metadata(actorType, deref(actorID))}, grpc.WaitForReady(true))
	})
	if err != nil {
		return nil, err
	}
	out := make([]Reminder, 0, len(resp.GetJobs()))
	for _, j := range resp.GetJobs() {
		a := j.GetMetadata().GetTarget().GetActor()
		if a == nil {
			continue
		}
		rem := jobReminder(j.GetName(), a.GetType(), a.GetId(), j.GetJob())
		rem.TTL = "" // daprd's list leaves the expiry out
		out = append(out, rem)
	}
	return out, nil
}

func (s *schedulerReminders) DeleteByActor(ctx context.Context, actorType string, actorID *string) error {
	prefix := actorID == nil
	_, err := jobs.Call(ctx, s.sched, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.DeleteByMetadataResponse, error) {
		return c.DeleteByMetadata(ctx, &schedulerv1.DeleteByMetadataRequest{
			Metadata: s.metadata(actorType, deref(actorID)), IdPrefixMatch: &prefix,
		}, grpc.WaitForReady(true))
	})
	return err
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func (s *schedulerReminders) Delete(ctx context.Context, actorType, actorID, name string) error {
	_, err := jobs.Call(ctx, s.sched, func(ctx context.Context, c schedulerv1.SchedulerClient) (*schedulerv1.DeleteJobResponse, error) {
		return c.DeleteJob(ctx, &schedulerv1.DeleteJobRequest{Name: name, Metadata: s.metadata(actorType, actorID)}, grpc.WaitForReady(true))
	})
	if status.Code(err) == codes.NotFound {
		return nil
	}
	return err
}

// trigger delivers a reminder the scheduler triggered to the actor's owner
// (PUT remind/{name}) and answers the scheduler: SUCCESS when the actor
// took it, or asked with X-DaprReminderCancel to cancel it (then it is
// deleted); FAILED otherwise, which the job's failure policy retries.
func (s *schedulerReminders) trigger(ctx context.Context, job *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus {
	actor := job.GetMetadata().GetTarget().GetActor()
	// dueTime and period are empty, as in daprd's.
	req := reminderCall(actor.GetType(), actor.GetId(), job.GetName(), job.GetData(), "", "")
	resp, err := s.r.routeReminder(ctx, req)
	if f := s.r.cfg.ReminderFired; f != nil {
		f(actor.GetType(), err == nil)
	}
	if resp != nil && cancelHeader(resp) {
		if derr := s.Delete(ctx, actor.GetType(), actor.GetId(), job.GetName()); derr != nil {
			s.r.log.Warn("delete cancelled reminder", "reminder", job.GetName(), "error", derr)
		}
		return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
	}
	if err != nil {
		if ctx.Err() == nil {
			s.r.log.Error("failed to invoke scheduled actor reminder", "reminder", job.GetName(),
				"actor_type", actor.GetType(), "actor_id", actor.GetId(), "error", err)
		}
		return schedulerv1.WatchJobsRequestResultStatus_FAILED
	}
	return schedulerv1.WatchJobsRequestResultStatus_SUCCESS
}

// migrate moves the reminders of the hosted types from the actor state
// store to the scheduler, as daprd 1.15 did on upgrade: each one is
// created with what it has left (its next firing as the due time, its
// remaining repetitions and its expiry); a type's state-store entry is
// removed only once all of its reminders are in the scheduler, so a
// failure loses none (the next start tries again).
func (s *schedulerReminders) migrate(ctx context.Context, types []string) {
	st, err := s.r.store()
	if err != nil {
		return // no actor state store: nothing to move
	}
	for _, typ := range types {
		list, err := s.r.loadReminders(ctx, st, typ)
		if err != nil || len(list) == 0 {
			if err != nil {
				s.r.log.Warn("read state-store reminders to migrate", "actor_type", typ, "error", err)
			}
			continue
		}
		moved := 0
		for _, rem := range list {
			if err := s.migrateOne(ctx, rem); err != nil {
				s.r.log.Error("migrate reminder to the scheduler; it stays in the state store", "reminder", rem.id(), "error", err)
				continue
			}
			moved++
		}
		if moved != len(list) {
			continue
		}
		clearAll := reminderChange{Apply: func([]storedReminder) ([]storedReminder, error) { return nil, nil }}
		if err := s.r.updateReminders(ctx, typ, clearAll); err != nil {
			s.r.log.Warn("clear migrated reminders from the state store", "actor_type", typ, "error", err)
			continue
		}
		s.r.log.Info("actor reminders migrated from the state store to the scheduler", "actor_type", typ, "count", moved)
	}
}

func (s *schedulerReminders) migrateOne(ctx context.Context, rem storedReminder) error {
	every, _, err := scheduleFromPeriod(rem.Period)
	if err != nil {
		return err
	}
	job := &schedulerv1.Job{Schedule: every}
	if !rem.NextFireTime.IsZero() {
		due := rem.NextFireTime.UTC().Format(time.RFC3339Nano)
		if rem.NextFireTime.Before(time.Now()) {
			due = "0s"
		}
		job.DueTime = &due
	}
	if rem.RepetitionsLeft > 0 {
		n := uint32(rem.RepetitionsLeft)
		job.Repeats = &n
	}
	if rem.ExpirationTime != "" {
		job.Ttl = &rem.ExpirationTime
	}
	job.Data = rem.dataAny()
	// A reminder already in the scheduler (an earlier, interrupted
	// migration or one made since) is kept as it is.
	err = s.schedule(ctx, &schedulerv1.ScheduleJobRequest{Name: rem.Name, Job: job, Metadata: s.metadata(rem.ActorType, rem.ActorID)})
	if status.Code(err) == codes.AlreadyExists || strings.Contains(fmt.Sprint(err), "already exists") {
		return nil
	}
	return err
}
