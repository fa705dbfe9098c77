// Package cron is the bindings.cron input binding: it fires an event with
// no data on a schedule, in Dapr's formats: a cron spec with optional
// seconds ("*/15 * * * * *", "0 30 * * * *", "30 * * * *"), a descriptor
// (@yearly, @monthly, @weekly, @daily, @hourly) or "@every <duration>".
//
// A firing is delivered once: an error from the app is logged and the next
// firing comes on schedule (there is nothing to redeliver). A firing due
// while the previous one is still being delivered is skipped.
package cron

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

// Type is the component's spec.type.
const Type = "bindings.cron"

var parser = robfig.NewParser(robfig.SecondOptional | robfig.Minute | robfig.Hour | robfig.Dom | robfig.Month | robfig.Dow | robfig.Descriptor)

// Binding is a cron input binding.
type Binding struct {
	log      *slog.Logger
	name     string
	schedule robfig.Schedule
	now      func() time.Time
}

// New returns an uninitialised cron binding.
func New(log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Binding{log: log, now: time.Now}
}

// parseSchedule reads the schedule metadata.
func parseSchedule(md components.Metadata) (robfig.Schedule, error) {
	spec := md.String("schedule", "")
	if spec == "" {
		return nil, fmt.Errorf("component %q: metadata %q is required (e.g. \"@every 15s\" or \"0 30 * * * *\")", md.Name, "schedule")
	}
	s, err := parser.Parse(spec)
	if err != nil {
		return nil, fmt.Errorf("component %q: metadata %q: invalid schedule format %q: %v", md.Name, "schedule", spec, err)
	}
	return s, nil
}

// Init reads the schedule.
func (b *Binding) Init(_ context.Context, md components.Metadata) error {
	s, err := parseSchedule(md)
	if err != nil {
		return components.Permanent(err)
	}
	b.name, b.schedule = md.Name, s
	return nil
}

// Read fires h on the schedule until ctx ends.
func (b *Binding) Read(ctx context.Context, h bindings.Handler) error {
	if b.schedule == nil {
		return fmt.Errorf("cron binding %q is not initialised", b.name)
	}
	next := b.schedule.Next(b.now())
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		now := b.now()
		_, err := h(ctx, &bindings.Event{Metadata: map[string]string{
			"timeZone":    time.Local.String(),
			"readTimeUTC": now.UTC().String(),
		}})
		if err != nil && ctx.Err() == nil {
			b.log.Debug("cron event not delivered; the next one comes on schedule", "binding", b.name, "error", err)
		}
		// The next firing after now: those due during the delivery are
		// skipped.
		next = b.schedule.Next(b.now())
	}
}

// Close does nothing: Read stops with its context.
func (b *Binding) Close() error { return nil }
