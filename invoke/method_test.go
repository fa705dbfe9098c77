package invoke

import (
	"strings"
	"testing"
)

func TestNormalizeMethod(t *testing.T) {
	tests := []struct {
		in, want string
		bad      bool
	}{
		{in: "orders", want: "orders"},
		{in: "test#stream", bad: true},
		{in: "test?stream", bad: true},
		{in: "test\x00stream", bad: true},
		{in: "test\rstream", bad: true},
		{in: "test\x7fstream", bad: true},
		{in: "a#b?c%d", bad: true},
		{in: `test"stream`, want: `test"stream`},
		{in: "test%stream", want: "test%stream"},
		{in: "test%2Fstream", want: "test%2Fstream"},
		{in: "admin/../public", want: "public"},
		{in: "admin/../../public", want: "public"},
		{in: "../../etc", want: "etc"},
		{in: "/abs/./x", want: "/abs/x"},
		{in: "public/", want: "public"},
		{in: "api///v1///users", want: "api/v1/users"},
		{in: "", want: ""},
		{in: ".", want: ""},
		{in: "..", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizeMethod(tt.in)
			if tt.bad {
				if err == nil {
					t.Fatalf("NormalizeMethod(%q) = %q, want an error", tt.in, got)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("NormalizeMethod(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

func FuzzNormalizeMethod(f *testing.F) {
	for _, s := range []string{"a/b", "a/../../b", "x#y", "%2F..%2F", "a\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeMethod(in)
		if err != nil {
			return
		}
		if strings.ContainsAny(out, "#?\x00\r\n") || strings.HasPrefix(out, "../") || out == ".." {
			t.Fatalf("NormalizeMethod(%q) = %q", in, out)
		}
		again, err := NormalizeMethod(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, out, again, err)
		}
	})
}
