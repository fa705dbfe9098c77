package actors

import (
	"errors"
	"testing"
)

func TestScheduleFromPeriod(t *testing.T) {
	for _, tc := range []struct {
		period, every string
		repeats       uint32 // 0: none
		bad           bool
	}{
		{period: ""},
		{period: "1s", every: "@every 1s"},
		{period: "1m30s", every: "@every 1m30s"},
		{period: "PT2S", every: "@every 2s"},
		{period: "R3/PT1S", every: "@every 1s", repeats: 3},
		{period: "P1D", bad: true},
		{period: "P1M", bad: true},
		{period: "bogus", bad: true},
	} {
		every, repeats, err := scheduleFromPeriod(tc.period)
		var fe *FieldError
		switch {
		case tc.bad:
			if !errors.As(err, &fe) || fe.Field != "period" {
				t.Errorf("%q: error = %v, want a period FieldError", tc.period, err)
			}
			continue
		case err != nil:
			t.Errorf("%q: %v", tc.period, err)
			continue
		}
		if got := deref(every); got != tc.every {
			t.Errorf("%q: schedule = %q, want %q", tc.period, got, tc.every)
		}
		var n uint32
		if repeats != nil {
			n = *repeats
		}
		if n != tc.repeats {
			t.Errorf("%q: repeats = %d, want %d", tc.period, n, tc.repeats)
		}
	}
}
