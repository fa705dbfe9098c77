package state

import (
	"strings"
	"testing"
)

func TestLikePattern(t *testing.T) {
	tests := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"app||%", []string{"app||", "app||a", "app||a||b"}, []string{"app|", "xapp||a"}},
		{"a_c", []string{"abc", "a_c", "a\nc"}, []string{"ac", "abbc", "ABC"}},
		{`a\%c`, []string{"a%c"}, []string{"abc", "a%%c"}},
		{`a\_c`, []string{"a_c"}, []string{"abc"}},
		{`a\\c`, []string{`a\c`}, []string{`a\\c`}},
		{`ab\`, []string{`ab\`}, []string{"ab"}},
		{"a.c(", []string{"a.c("}, []string{"abc("}},
		{"%", []string{"", "anything"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			re, err := LikePattern(tc.pattern)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.match {
				if !re.MatchString(s) {
					t.Errorf("%q does not match %q", s, tc.pattern)
				}
			}
			for _, s := range tc.miss {
				if re.MatchString(s) {
					t.Errorf("%q matches %q", s, tc.pattern)
				}
			}
		})
	}
}

func TestDeleteWithPrefixRequest(t *testing.T) {
	tests := []struct {
		prefix, want string
		wantErr      bool
	}{
		{"", "", true},
		{"||", "", true},
		{"app||actor", "app||actor||", false},
		{"app||actor||", "app||actor||", false},
	}
	for _, tc := range tests {
		t.Run(tc.prefix, func(t *testing.T) {
			r := DeleteWithPrefixRequest{Prefix: tc.prefix}
			err := r.Validate()
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err == nil && r.Prefix != tc.want {
				t.Errorf("prefix = %q, want %q", r.Prefix, tc.want)
			}
		})
	}
	r := DeleteWithPrefixRequest{Prefix: "app||actor||"}
	for key, want := range map[string]bool{"app||actor||k": true, "app||actor||": true, "app||actor||a||b": false, "app||actorx||k": false} {
		if got := r.Matches(key); got != want {
			t.Errorf("Matches(%q) = %v, want %v", key, got, want)
		}
	}
}

// FuzzLikePattern: every pattern compiles, and a string escaped as a literal
// pattern matches itself.
func FuzzLikePattern(f *testing.F) {
	for _, s := range []string{"", "%", "a_b", `a\`, `\\%`, "app||k", "(.*)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := LikePattern(s); err != nil {
			t.Fatalf("pattern %q: %v", s, err)
		}
		lit := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
		re, err := LikePattern(lit)
		if err != nil {
			t.Fatalf("pattern %q: %v", lit, err)
		}
		if strings.ToValidUTF8(s, "\uFFFD") == s && !re.MatchString(s) {
			t.Errorf("literal pattern %q does not match %q", lit, s)
		}
	})
}
