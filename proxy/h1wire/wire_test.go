package h1wire

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestCanonicalNameAsNetHTTP(t *testing.T) {
	for _, k := range []string{"Content-Type", "content-type", "X-DAPR-a", "x_y-z", "a", "Dapr-Api-Token", "WWW-Authenticate", "1-x"} {
		got, ok := CanonicalName(k)
		if !ok || got != http.CanonicalHeaderKey(k) {
			t.Errorf("CanonicalName(%q) = %q, %v; net/http gives %q", k, got, ok, http.CanonicalHeaderKey(k))
		}
	}
	for _, k := range []string{"a b", "a:b", "é", "a\tb"} {
		if _, ok := CanonicalName(k); ok {
			t.Errorf("CanonicalName(%q) took a name that is not a token", k)
		}
	}
}

func TestHasCTL(t *testing.T) {
	for s, want := range map[string]bool{"a b\tc": false, "caf\xc3\xa9": false, "a\rb": true, "a\x00": true, "\x7f": true, "": false} {
		if got := HasCTL(s); got != want {
			t.Errorf("HasCTL(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestTrimOWS(t *testing.T) {
	if got := TrimOWS(" \t a b \t "); got != "a b" {
		t.Errorf("TrimOWS = %q", got)
	}
}

// TestLenBody reads bodies as net/http's body reader ends them.
func TestLenBody(t *testing.T) {
	read := func(src string, n int64, bufSize int) (string, []error) {
		b := &LenBody{R: bufio.NewReader(strings.NewReader(src)), N: n}
		var got strings.Builder
		var errs []error
		buf := make([]byte, bufSize)
		for range 10 {
			k, err := b.Read(buf)
			got.Write(buf[:k])
			if err != nil {
				errs = append(errs, err)
				if len(errs) == 2 {
					break
				}
			}
		}
		return got.String(), errs
	}
	// The last bytes come with io.EOF; what follows the body stays.
	got, errs := read("hello, next", 5, 64)
	if got != "hello" || errs[0] != io.EOF || errs[1] != io.EOF {
		t.Errorf("whole body: %q, %v", got, errs)
	}
	// A connection that ends early: io.ErrUnexpectedEOF once, then io.EOF.
	got, errs = read("abc", 5, 2)
	if got != "abc" || errs[0] != io.ErrUnexpectedEOF || errs[1] != io.EOF {
		t.Errorf("short body: %q, %v", got, errs)
	}
}
