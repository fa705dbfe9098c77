// Package schedule is the time arithmetic of a scheduler job: it checks a
// job's schedule, due time, repeats and ttl as Dapr's scheduler does, fixes
// them into a Plan when the job is stored (a relative due time becomes an
// instant), and says when the tick after a given one is.
//
// Schedules are cron expressions with seconds ("*/5 * * * * *") or
// descriptors ("@every 1s", "@daily", "@hourly"...); due times and ttls are
// RFC 3339 instants, Go durations ("10s") or ISO 8601 durations ("PT10S").
package schedule

import (
	"errors"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"
)

// parser reads Dapr's cron dialect: six fields with seconds, or a
// descriptor.
var parser = cron.NewParser(cron.Second | cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Spec is a job's timing as a client gives it (the optional fields of
// dapr.proto.scheduler.v1.Job).
type Spec struct {
	Schedule *string
	DueTime  *string
	TTL      *string
	Repeats  *uint32
}

// Plan is a Spec fixed at the moment the job was stored.
type Plan struct {
	// Schedule is the cron expression, empty for a one-shot job.
	Schedule string `json:"schedule,omitempty"`
	// Start is when the job was stored: the first tick of a schedule
	// without a due time is the schedule's first after it.
	Start time.Time `json:"start"`
	// DueTime, when set, is the first tick.
	DueTime *time.Time `json:"dueTime,omitempty"`
	// Expiration, when set, is the instant after which no tick is due.
	Expiration *time.Time `json:"expiration,omitempty"`
	// Repeats, when set, is how many ticks there are at most.
	Repeats *uint32 `json:"repeats,omitempty"`
}

// Validate checks a Spec as Make does, without fixing it.
func Validate(s Spec) error {
	_, err := Make(s, time.Now())
	return err
}

// Make checks s and fixes it at now. Its errors are Dapr scheduler's.
func Make(s Spec, now time.Time) (Plan, error) {
	if s.DueTime == nil && s.Schedule == nil {
		return Plan{}, errors.New("job must have either a due time or a schedule")
	}
	if s.Schedule == nil && s.Repeats != nil && *s.Repeats > 1 {
		return Plan{}, errors.New("job must have a schedule to repeat")
	}
	if s.Repeats != nil && *s.Repeats < 1 {
		return Plan{}, errors.New("defined repeats must be greater than 0")
	}
	if s.Schedule == nil && s.TTL != nil {
		return Plan{}, errors.New("job must have a schedule to have a ttl")
	}
	now = now.UTC()
	p := Plan{Start: now, Repeats: s.Repeats}
	if s.Schedule != nil {
		if _, err := parser.Parse(*s.Schedule); err != nil {
			return Plan{}, fmt.Errorf("schedule %q: %w", *s.Schedule, err)
		}
		p.Schedule = *s.Schedule
	}
	begin := now
	if s.DueTime != nil {
		t, err := PointInTime(*s.DueTime, now)
		if err != nil {
			return Plan{}, err
		}
		begin = t.UTC()
		p.DueTime = &begin
	}
	if s.TTL != nil {
		exp, err := PointInTime(*s.TTL, begin)
		if err != nil {
			return Plan{}, errors.New("ttl format not recognized")
		}
		if s.DueTime != nil && begin.After(exp) {
			return Plan{}, errors.New("ttl must be greater than due time")
		}
		exp = exp.UTC()
		p.Expiration = &exp
	}
	return p, nil
}

// Next is the tick after last, given that count ticks are done; ok is
// false when there is none (repeats reached, past the expiration, or a
// one-shot job done). last is the zero time before the first tick.
func (p Plan) Next(count uint32, last time.Time) (next time.Time, ok bool) {
	if p.Repeats != nil && count >= *p.Repeats {
		return time.Time{}, false
	}
	if p.Schedule == "" {
		if count >= 1 || p.DueTime == nil {
			return time.Time{}, false
		}
		return *p.DueTime, true
	}
	if last.IsZero() {
		if p.DueTime != nil {
			next = *p.DueTime
		} else {
			sched, err := parser.Parse(p.Schedule)
			if err != nil {
				return time.Time{}, false
			}
			next = sched.Next(p.Start)
		}
	} else {
		sched, err := parser.Parse(p.Schedule)
		if err != nil {
			return time.Time{}, false
		}
		next = sched.Next(last)
	}
	if next.IsZero() || (p.Expiration != nil && next.After(*p.Expiration)) {
		return time.Time{}, false
	}
	return next, true
}

// PointInTime reads an RFC 3339 instant, or a Go or ISO 8601 duration
// after now.
func PointInTime(s string, now time.Time) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(d), nil
	}
	y, m, d, dur, err := ParseISO8601Duration(s)
	if err != nil {
		return time.Time{}, errors.New("due time format not recognized")
	}
	return now.AddDate(y, m, d).Add(dur), nil
}
