package resiliency

import (
	"strings"
	"testing"
)

func TestTrip(t *testing.T) {
	tests := []struct {
		expr string
		c    Counts
		want bool
	}{
		{"consecutiveFailures > 5", Counts{ConsecutiveFailures: 5}, false},
		{"consecutiveFailures > 5", Counts{ConsecutiveFailures: 6}, true},
		{"consecutiveFailures >= 5", Counts{ConsecutiveFailures: 5}, true},
		{"requests > 10 && totalFailures / requests >= 0.5", Counts{Requests: 11, TotalFailures: 6}, true},
		{"requests > 10 && totalFailures / requests >= 0.5", Counts{Requests: 11, TotalFailures: 5}, false},
		{"requests > 10 && totalFailures / requests >= 0.5", Counts{Requests: 4, TotalFailures: 4}, false},
		{"totalFailures / requests > 0.5", Counts{}, false}, // division by zero: false
		{"requests > 0 && totalFailures / requests > 0.5", Counts{}, false},
		{"consecutiveFailures > 3 || totalFailures >= 10", Counts{TotalFailures: 10}, true},
		{"!(consecutiveSuccesses > 0)", Counts{}, true},
		{"totalSuccesses * 2 < totalFailures - 1", Counts{TotalSuccesses: 1, TotalFailures: 4}, true},
		{"consecutiveFailures % 2 == 1", Counts{ConsecutiveFailures: 3}, true},
		{"consecutiveFailures % 0.5 == 1", Counts{ConsecutiveFailures: 3}, false},
		{"-1 < requests", Counts{}, true},
		{"true", Counts{}, true},
		{"(requests == 3) == true", Counts{Requests: 3}, true},
		{"requests != 3", Counts{Requests: 3}, false},
		{"requests<=3&&requests>=3", Counts{Requests: 3}, true},
	}
	for _, tt := range tests {
		tr, err := ParseTrip(tt.expr)
		if err != nil {
			t.Errorf("ParseTrip(%q): %v", tt.expr, err)
			continue
		}
		if got := tr.Eval(tt.c); got != tt.want {
			t.Errorf("%q with %+v = %v, want %v", tt.expr, tt.c, got, tt.want)
		}
	}
}

func TestTripErrors(t *testing.T) {
	tests := []struct{ expr, want string }{
		{"", "empty"},
		{"failures > 5", `unknown name "failures"`},
		{"consecutiveFailures", "not a condition"},
		{"consecutiveFailures > ", "ends early"},
		{"(requests > 1", "missing )"},
		{"requests > 1)", `unexpected ")"`},
		{"requests > 1 && 5", "conditions on both sides"},
		{"requests + (requests > 1) > 0", "numbers on both sides"},
		{"requests > 1 > 0", `unexpected ">"`},
		{"requests > true", "mixed"},
		{"requests $ 1", "unexpected character"},
		{"1.2.3 > requests", "bad number"},
		{"!requests", "needs a condition"},
		{strings.Repeat("(", 100) + "true" + strings.Repeat(")", 100), "nested too deeply"},
		{strings.Repeat("requests + ", 200) + "1 > 0", "longer than"},
	}
	for _, tt := range tests {
		_, err := ParseTrip(tt.expr)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseTrip(%q) = %v, want error containing %q", tt.expr, err, tt.want)
		}
	}
}

func FuzzTrip(f *testing.F) {
	for _, s := range []string{"consecutiveFailures > 5", "requests > 10 && totalFailures / requests >= 0.5",
		"!(a)", "((((", "requests % 0 == 0", "-(-requests) < 1e9", "1/0 > 1 || true"} {
		f.Add(s, uint32(3), uint32(1))
	}
	f.Fuzz(func(t *testing.T, expr string, a, b uint32) {
		tr, err := ParseTrip(expr)
		if err != nil {
			return
		}
		tr.Eval(Counts{Requests: a, TotalFailures: b, ConsecutiveFailures: b})
	})
}
