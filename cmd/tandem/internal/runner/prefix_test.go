package runner

import (
	"bytes"
	"testing"
)

func TestPrefixWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		flush  bool
		want   string
	}{
		{"whole lines", []string{"a\nb\n"}, false, "> a\n> b\n"},
		{"split line", []string{"he", "llo\nwor"}, false, "> hello\n"},
		{"flush partial", []string{"he", "llo\nwor"}, true, "> hello\n> wor\n"},
		{"empty", nil, true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			w := newPrefixWriter(NewConsole(&buf), "> ")
			for _, s := range tt.writes {
				if n, err := w.Write([]byte(s)); n != len(s) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			if tt.flush {
				w.Flush()
			}
			if buf.String() != tt.want {
				t.Fatalf("got %q, want %q", buf.String(), tt.want)
			}
		})
	}
}

func TestChoosePort(t *testing.T) {
	p, err := choosePort(0, "--x")
	if err != nil || p == 0 {
		t.Fatalf("free port: %d %v", p, err)
	}
	if got, err := choosePort(p, "--x"); err != nil || got != p {
		t.Fatalf("free given port: %d %v", got, err)
	}
}
