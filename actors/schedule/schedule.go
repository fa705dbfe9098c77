// Package schedule parses the times of actor timers and reminders in the
// formats Dapr accepts: dueTime and ttl as an RFC 3339 time, a Go duration
// ("1m30s") or an ISO 8601 duration ("PT1M30S"); period as a Go duration,
// an ISO 8601 duration, or an ISO 8601 repeating interval ("R5/PT10S": five
// firings, ten seconds apart).
package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Period is how often a timer or reminder fires again.
type Period struct {
	Years, Months, Days int
	Every               time.Duration
	// Repeats is how many firings remain; -1 is no limit.
	Repeats int
	// Raw is the text it was parsed from, sent back to the app as is.
	Raw string
}

// Repeating reports whether there is a firing after the first one.
func (p Period) Repeating() bool {
	return p.Repeats != 0 && (p.Years != 0 || p.Months != 0 || p.Days != 0 || p.Every != 0)
}

// Next is the firing after t.
func (p Period) Next(t time.Time) time.Time {
	return t.AddDate(p.Years, p.Months, p.Days).Add(p.Every)
}

// ParsePeriod parses a period; "" is a single firing.
func ParsePeriod(s string) (Period, error) {
	p := Period{Repeats: -1, Raw: s}
	if s == "" {
		return p, nil
	}
	if y, m, d, dur, r, err := parseISO(s); err == nil {
		if r == 0 {
			return Period{}, fmt.Errorf("period %q has zero repetitions", s)
		}
		p.Years, p.Months, p.Days, p.Every, p.Repeats = y, m, d, dur, r
		return p, nil
	}
	dur, err := time.ParseDuration(s)
	if err != nil {
		return Period{}, fmt.Errorf("unsupported duration format: %q", s)
	}
	p.Every = dur
	return p, nil
}

// ParseTime parses a dueTime or ttl: an RFC 3339 time, or a duration
// (Go or ISO 8601, without repetitions) counted from now. "" is now.
func ParseTime(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return now, nil
	}
	if y, m, d, dur, r, err := parseISO(s); err == nil {
		if r != -1 {
			return time.Time{}, fmt.Errorf("repetitions are not allowed in %q", s)
		}
		return now.AddDate(y, m, d).Add(dur), nil
	}
	if dur, err := time.ParseDuration(s); err == nil {
		return now.Add(dur), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("unsupported time/duration format: %q", s)
}

var errISO = errors.New("not an ISO 8601 duration")

// parseISO parses "[Rn/]P[nY][nM][nW][nD][T[nH][nM][nS]]"; repeats is -1
// without an "Rn/" prefix. "Rn" alone (no duration) is n repeats of zero.
func parseISO(s string) (years, months, days int, dur time.Duration, repeats int, err error) {
	repeats = -1
	if len(s) < 2 {
		return 0, 0, 0, 0, 0, errISO
	}
	i := 0
	if s[0] == 'R' {
		j := 1
		for j < len(s) && s[j] != '/' {
			j++
		}
		n, aerr := strconv.Atoi(s[1:j])
		if j == 1 || aerr != nil || n < 0 {
			return 0, 0, 0, 0, 0, errISO
		}
		repeats = n
		if j+1 >= len(s) {
			return 0, 0, 0, 0, repeats, nil
		}
		i = j + 1
	}
	if s[i] != 'P' {
		return 0, 0, 0, 0, 0, errISO
	}
	i++
	start, inTime := i, false
	for ; i < len(s); i++ {
		c := s[i]
		if c == 'T' {
			if start != i || inTime {
				return 0, 0, 0, 0, 0, errISO
			}
			inTime, start = true, i+1
			continue
		}
		if c >= '0' && c <= '9' {
			continue
		}
		n, aerr := strconv.Atoi(s[start:i])
		if start == i || aerr != nil || n < 0 {
			return 0, 0, 0, 0, 0, errISO
		}
		switch {
		case c == 'Y' && !inTime:
			years = n
		case c == 'M' && !inTime:
			months = n
		case c == 'W' && !inTime:
			days += 7 * n
		case c == 'D' && !inTime:
			days += n
		case c == 'H' && inTime:
			dur += time.Duration(n) * time.Hour
		case c == 'M' && inTime:
			dur += time.Duration(n) * time.Minute
		case c == 'S' && inTime:
			dur += time.Duration(n) * time.Second
		default:
			return 0, 0, 0, 0, 0, errISO
		}
		start = i + 1
	}
	if start != len(s) {
		return 0, 0, 0, 0, 0, errISO // digits without a unit
	}
	return years, months, days, dur, repeats, nil
}
