package api

import "testing"

func TestIsForceShutdown(t *testing.T) {
	for _, tc := range []struct {
		name   string
		values []string
		want   bool
	}{
		{"absent", nil, false},
		{"true", []string{"true"}, true},
		{"any case", []string{"TRUE"}, true},
		{"false", []string{"false"}, false},
		{"one of several", []string{"no", "True"}, true},
		{"not a boolean", []string{"1"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsForceShutdown(tc.values); got != tc.want {
				t.Fatalf("IsForceShutdown(%q) = %v, want %v", tc.values, got, tc.want)
			}
		})
	}
}
