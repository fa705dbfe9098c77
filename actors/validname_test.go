package actors

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"reminder1", true}, {"a.b-c_d", true}, {"名前", true}, {strings.Repeat("a", 600), true},
		{"", false}, {"bad/name", false}, {`bad\name`, false}, {"bad#name", false}, {"bad?name", false},
		{"bad\x00name", false}, {"bad\nname", false}, {"bad\x7fname", false}, {".", false}, {"..", false},
	} {
		err := ValidName("name", tc.name)
		if (err == nil) != tc.ok {
			t.Errorf("ValidName(%q) = %v, want ok %t", tc.name, err, tc.ok)
		}
		var fe *FieldError
		if err != nil && (!errors.As(err, &fe) || fe.Field != "name") {
			t.Errorf("ValidName(%q) = %v, want a FieldError for name", tc.name, err)
		}
	}
}

func FuzzValidName(f *testing.F) {
	for _, s := range []string{"ok", "", "a/b", "..", "a\x00", "a#b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidName("name", s) == nil && (s == "" || strings.ContainsAny(s, "#?/\\") || s == "." || s == "..") {
			t.Fatalf("ValidName accepted %q", s)
		}
	})
}
