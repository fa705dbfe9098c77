package schedule

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// ParseISO8601Duration reads an ISO 8601 duration such as "P1Y2M3DT4H5M6S"
// or "P2W" into calendar parts and a clock part. Repetitions ("R5/PT1S")
// are refused: a due time or ttl is one instant.
func ParseISO8601Duration(s string) (years, months, days int, d time.Duration, err error) {
	if len(s) < 2 || s[0] != 'P' {
		return 0, 0, 0, 0, fmt.Errorf("%q is not an ISO 8601 duration (P...)", s)
	}
	inTime, seen := false, false
	num := ""
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9' || c == '.':
			num += string(c)
			continue
		case c == 'T':
			if inTime || num != "" {
				return 0, 0, 0, 0, fmt.Errorf("%q: misplaced T", s)
			}
			inTime = true
			continue
		}
		if num == "" {
			return 0, 0, 0, 0, fmt.Errorf("%q: unit %c without a number", s, c)
		}
		seen = true
		if !inTime {
			n, perr := strconv.Atoi(num)
			if perr != nil || n > 1_000_000 {
				return 0, 0, 0, 0, fmt.Errorf("%q: %q is not a whole number", s, num)
			}
			switch c {
			case 'Y':
				years += n
			case 'M':
				months += n
			case 'W':
				days += 7 * n
			case 'D':
				days += n
			default:
				return 0, 0, 0, 0, fmt.Errorf("%q: unknown unit %c", s, c)
			}
		} else {
			f, perr := strconv.ParseFloat(num, 64)
			if perr != nil || f > 1e9 {
				return 0, 0, 0, 0, fmt.Errorf("%q: %q is not a number", s, num)
			}
			switch c {
			case 'H':
				d += time.Duration(f * float64(time.Hour))
			case 'M':
				d += time.Duration(f * float64(time.Minute))
			case 'S':
				d += time.Duration(f * float64(time.Second))
			default:
				return 0, 0, 0, 0, fmt.Errorf("%q: unknown unit %c", s, c)
			}
		}
		num = ""
	}
	if num != "" || !seen {
		return 0, 0, 0, 0, errors.New("ISO 8601 duration " + strconv.Quote(s) + " ends without a unit")
	}
	return years, months, days, d, nil
}
