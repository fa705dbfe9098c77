package cron

import (
	"errors"
	"testing"
	"time"

	robfig "github.com/robfig/cron/v3"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseSchedule: see metadatafuzz.Run; a parsed schedule has a next
// firing.
func FuzzParseSchedule(f *testing.F) {
	var seeds []map[string]string
	for _, c := range scheduleCases {
		seeds = append(seeds, map[string]string{"schedule": c.schedule})
	}
	metadatafuzz.Run(f, "fuzzed", []string{"schedule"}, seeds, func(p map[string]string) (robfig.Schedule, error) {
		return parseSchedule(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(s robfig.Schedule) error {
		if s == nil {
			return errors.New("nil schedule")
		}
		_ = s.Next(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		return nil
	})
}
