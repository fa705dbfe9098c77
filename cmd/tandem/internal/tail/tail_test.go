package tail

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLines(t *testing.T) {
	tests := []struct {
		in   string
		n    int
		want []string
	}{
		{"", 3, nil},
		{"a\nb\nc\n", 2, []string{"b", "c"}},
		{"a\nb", 5, []string{"a", "b"}},
	}
	for _, tt := range tests {
		if got := Lines(tt.in, tt.n); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Lines(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}

func TestFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	if got := File(p, 2); !strings.Contains(got, "no log") {
		t.Fatalf("missing file: %q", got)
	}
	if err := os.WriteFile(p, []byte("one\ntwo\nthree\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := File(p, 2); got != "    two\n    three" {
		t.Fatalf("got %q", got)
	}
}
