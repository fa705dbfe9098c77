package schedule

import (
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestMakeRefusesWhatDaprRefuses(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		spec Spec
		want string
	}{
		{"nothing", Spec{}, "job must have either a due time or a schedule"},
		{"repeats without schedule", Spec{DueTime: ptr("1s"), Repeats: ptr(uint32(2))}, "job must have a schedule to repeat"},
		{"zero repeats", Spec{Schedule: ptr("@every 1s"), Repeats: ptr(uint32(0))}, "defined repeats must be greater than 0"},
		{"ttl without schedule", Spec{DueTime: ptr("1s"), TTL: ptr("1m")}, "job must have a schedule to have a ttl"},
		{"bad cron", Spec{Schedule: ptr("* * *")}, `schedule "* * *": expected exactly 6 fields, found 3: [* * *]`},
		{"bad due time", Spec{DueTime: ptr("soon")}, "due time format not recognized"},
		{"bad ttl", Spec{Schedule: ptr("@daily"), TTL: ptr("never")}, "ttl format not recognized"},
		{"ttl before due", Spec{Schedule: ptr("@daily"), DueTime: ptr("2026-02-01T00:00:00Z"), TTL: ptr("2026-01-15T00:00:00Z")}, "ttl must be greater than due time"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Make(tc.spec, now)
			if err == nil || err.Error() != tc.want {
				t.Fatalf("Make = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestNext(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	every, err := Make(Spec{Schedule: ptr("@every 1s"), Repeats: ptr(uint32(3))}, now)
	if err != nil {
		t.Fatal(err)
	}
	var last time.Time
	for i := range uint32(3) {
		next, ok := every.Next(i, last)
		if want := now.Add(time.Duration(i+1) * time.Second); !ok || !next.Equal(want) {
			t.Fatalf("tick %d = %v %v, want %v", i, next, ok, want)
		}
		last = next
	}
	if _, ok := every.Next(3, last); ok {
		t.Fatal("a fourth tick of a job with 3 repeats")
	}

	once, err := Make(Spec{DueTime: ptr("10s")}, now)
	if err != nil {
		t.Fatal(err)
	}
	if next, ok := once.Next(0, time.Time{}); !ok || !next.Equal(now.Add(10*time.Second)) {
		t.Fatalf("one-shot = %v %v", next, ok)
	}
	if _, ok := once.Next(1, now.Add(10*time.Second)); ok {
		t.Fatal("a one-shot job ticked twice")
	}

	cron, err := Make(Spec{Schedule: ptr("*/5 * * * * *"), DueTime: ptr("PT2S"), TTL: ptr("12s")}, now)
	if err != nil {
		t.Fatal(err)
	}
	var got []time.Duration
	last = time.Time{}
	for i := uint32(0); ; i++ {
		next, ok := cron.Next(i, last)
		if !ok {
			break
		}
		got = append(got, next.Sub(now))
		last = next
	}
	// due at 2s, then every 5 s on the clock, until 2s+12s
	if want := []time.Duration{2 * time.Second, 5 * time.Second, 10 * time.Second}; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Fatalf("ticks %v, want %v", got, want)
	}
}

func TestParseISO8601Duration(t *testing.T) {
	for in, want := range map[string][4]int64{
		"P1Y2M3D":   {1, 2, 3, 0},
		"PT1H30M":   {0, 0, 0, int64(90 * time.Minute)},
		"P2W":       {0, 0, 14, 0},
		"PT0.5S":    {0, 0, 0, int64(500 * time.Millisecond)},
		"P1DT2M10S": {0, 0, 1, int64(2*time.Minute + 10*time.Second)},
	} {
		y, m, d, dur, err := ParseISO8601Duration(in)
		if err != nil || [4]int64{int64(y), int64(m), int64(d), int64(dur)} != want {
			t.Errorf("%s = %d %d %d %v %v, want %v", in, y, m, d, dur, err, want)
		}
	}
	for _, bad := range []string{"", "P", "PT", "1S", "P1", "PT1X", "P1S", "R5/PT1S", "PTT1S"} {
		if _, _, _, _, err := ParseISO8601Duration(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func FuzzMake(f *testing.F) {
	for _, s := range []string{"@every 1s", "*/5 * * * * *", "@daily", "P1Y2M3DT4H5M6S", "10s", "2026-01-01T00:00:00Z", "R5/PT1S", "PT0.5S"} {
		f.Add(s, s, s)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, sched, due, ttl string) {
		p, err := Make(Spec{Schedule: &sched, DueTime: &due, TTL: &ttl}, now)
		if err != nil {
			return
		}
		last := time.Time{}
		for i := uint32(0); i < 3; i++ {
			next, ok := p.Next(i, last)
			if !ok {
				return
			}
			if !last.IsZero() && !next.After(last) {
				t.Fatalf("tick %d at %v is not after %v", i, next, last)
			}
			last = next
		}
	})
}
