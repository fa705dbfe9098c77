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

func TestNextField(t *testing.T) {
	s := "content-type:  text/plain \r\nX-A:\r\nbad line\r\nX-B: a\x01\r\nna me: v\r\nX-C: end"
	type field struct {
		name, value string
		ok          bool
	}
	var got []field
	for pos := 0; pos < len(s); {
		name, v, next, ok := NextField(s, pos)
		got = append(got, field{name, v, ok})
		if !ok {
			// Skip the line to look at the next one.
			e := strings.Index(s[pos:], "\r\n")
			if e < 0 {
				break
			}
			next = pos + e + 2
		}
		pos = next
	}
	want := []field{{"Content-Type", "text/plain", true}, {"X-A", "", true}, {}, {}, {}, {}}
	if len(got) != len(want) {
		t.Fatalf("NextField read %d lines, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestHeader(t *testing.T) {
	h := NewHeader(2)
	h.Add("A", "1")
	h.Add("B", "2")
	h.Add("A", "3")
	h.Add("C", "4") // more names than lines announced
	want := http.Header{"A": {"1", "3"}, "B": {"2"}, "C": {"4"}}
	if len(h.H) != len(want) || h.H.Get("C") != "4" || strings.Join(h.H["A"], ",") != "1,3" || h.H.Get("B") != "2" {
		t.Errorf("header %v, want %v", h.H, want)
	}
	// A first value's slice has no room: appending to it copies, so the
	// next name's value is not overwritten.
	if h.H.Get("B") != "2" || cap(h.H["B"]) != 1 {
		t.Errorf("values share room: %v", h.H)
	}
}
