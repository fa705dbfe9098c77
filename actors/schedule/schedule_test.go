package schedule

import (
	"testing"
	"time"
)

var now = time.Date(2026, 1, 31, 12, 0, 0, 0, time.UTC)

func TestParseTime(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want time.Time
		err  bool
	}{
		{"", now, false},
		{"0s", now, false},
		{"1m30s", now.Add(90 * time.Second), false},
		{"PT1M30S", now.Add(90 * time.Second), false},
		{"P1D", now.AddDate(0, 0, 1), false},
		{"P1W", now.AddDate(0, 0, 7), false},
		{"P1MT1M", now.AddDate(0, 1, 0).Add(time.Minute), false},
		{"P1Y2M3DT4H5M6S", now.AddDate(1, 2, 3).Add(4*time.Hour + 5*time.Minute + 6*time.Second), false},
		{"2026-02-01T00:00:00Z", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), false},
		{"R5/PT1S", time.Time{}, true},
		{"abc", time.Time{}, true},
		{"P", time.Time{}, true},
		{"PT1H1D", time.Time{}, true},
		{"P1H", time.Time{}, true},
		{"PT5", time.Time{}, true},
	} {
		got, err := ParseTime(tc.in, now)
		if (err != nil) != tc.err || !got.Equal(tc.want) {
			t.Errorf("ParseTime(%q) = %v, %v; want %v, err %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func TestParsePeriod(t *testing.T) {
	for _, tc := range []struct {
		in        string
		every     time.Duration
		days      int
		repeats   int
		repeating bool
		err       bool
	}{
		{"", 0, 0, -1, false, false},
		{"10s", 10 * time.Second, 0, -1, true, false},
		{"PT10S", 10 * time.Second, 0, -1, true, false},
		{"R5/PT10S", 10 * time.Second, 0, 5, true, false},
		{"R3/P1D", 0, 1, 3, true, false},
		{"R2", 0, 0, 2, false, false},
		{"R0/PT1S", 0, 0, 0, false, true},
		{"R/PT1S", 0, 0, 0, false, true},
		{"Rx/PT1S", 0, 0, 0, false, true},
		{"1 minute", 0, 0, 0, false, true},
	} {
		p, err := ParsePeriod(tc.in)
		if (err != nil) != tc.err {
			t.Errorf("ParsePeriod(%q) err %v", tc.in, err)
			continue
		}
		if err != nil {
			continue
		}
		if p.Every != tc.every || p.Days != tc.days || p.Repeats != tc.repeats || p.Repeating() != tc.repeating || p.Raw != tc.in {
			t.Errorf("ParsePeriod(%q) = %+v", tc.in, p)
		}
	}
	p, _ := ParsePeriod("P1M")
	if got := p.Next(now); !got.Equal(now.AddDate(0, 1, 0)) {
		t.Errorf("next %v", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"", "1s", "PT1S", "R5/PT1S", "P1Y2M3W4DT5H6M7S", "2026-01-01T00:00:00Z", "R", "P", "RP", "R1/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePeriod(s); err == nil {
			if p.Repeats == 0 || p.Raw != s {
				t.Fatalf("%q: %+v", s, p)
			}
			_ = p.Next(now)
		}
		if tm, err := ParseTime(s, now); err == nil && tm.IsZero() {
			t.Fatalf("%q: zero time without error", s)
		}
	})
}
