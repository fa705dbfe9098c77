package leanwire

import (
	"bytes"
	"testing"
)

func request(method, uri string, header [][2]string, body string) []byte {
	b := AppendRequestHead(nil, method, uri, len(header))
	for _, h := range header {
		b = AppendField(b, h[0], h[1])
	}
	return AppendBytes(b, []byte(body))
}

func TestRequestRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		method, uri string
		header      [][2]string
		body        string
	}{
		{"GET", "/", nil, ""},
		{"POST", "/orders/1?full=true", [][2]string{{"Content-Type", "application/json"}, {"X-A", "1"}, {"X-A", "2"}}, `{"id":"1"}`},
		{"PUT", "/x", [][2]string{{"", ""}}, string(make([]byte, 70000))},
	} {
		t.Run(tc.method+tc.uri, func(t *testing.T) {
			var r Request
			if err := DecodeRequest(request(tc.method, tc.uri, tc.header, tc.body), &r); err != nil {
				t.Fatal(err)
			}
			if string(r.Method) != tc.method || string(r.URI) != tc.uri || string(r.Body) != tc.body || len(r.Header) != len(tc.header) {
				t.Fatalf("got %q %q %d fields %d bytes", r.Method, r.URI, len(r.Header), len(r.Body))
			}
			for i, h := range tc.header {
				if string(r.Header[i].Name) != h[0] || string(r.Header[i].Value) != h[1] {
					t.Fatalf("field %d: %q: %q, want %q", i, r.Header[i].Name, r.Header[i].Value, h)
				}
			}
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	b := AppendResponseHead(nil, 201, 1)
	b = AppendField(b, "Location", "/orders/1")
	b = AppendBytes(b, []byte("made"))
	var r Response
	r.Header = make([]Field, 0, 4)
	if err := DecodeResponse(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.Status != 201 || len(r.Header) != 1 || string(r.Header[0].Name) != "Location" || string(r.Header[0].Value) != "/orders/1" || string(r.Body) != "made" {
		t.Fatalf("got %+v", r)
	}
	// Decoding again reuses the header array: no allocation.
	if n := testing.AllocsPerRun(100, func() { _ = DecodeResponse(b, &r) }); n != 0 {
		t.Fatalf("%v allocations per decode", n)
	}
}

func TestMalformed(t *testing.T) {
	good := request("POST", "/a", [][2]string{{"A", "1"}}, "body")
	for name, b := range map[string][]byte{
		"empty":                    nil,
		"cut in a length":          good[:2],
		"cut in the body":          good[:len(good)-1],
		"trailing bytes":           append(bytes.Clone(good), 0),
		"length past the end":      AppendUint32(nil, 1<<31),
		"field count past the end": AppendUint32(AppendString(AppendString(nil, "GET"), "/"), 1<<30),
	} {
		t.Run(name, func(t *testing.T) {
			var r Request
			if err := DecodeRequest(b, &r); err != ErrMalformed {
				t.Fatalf("err %v, want ErrMalformed", err)
			}
		})
	}
	var r Response
	if err := DecodeResponse(good, &r); err != ErrMalformed {
		t.Fatalf("a request read as a response: err %v", err)
	}
}

// FuzzDecode: decoding never panics nor reads past its input, and what
// decodes encodes back to the same bytes.
func FuzzDecode(f *testing.F) {
	f.Add(request("POST", "/orders/1?full=true", [][2]string{{"Content-Type", "application/json"}}, `{"id":"1"}`))
	f.Add(request("GET", "/", nil, ""))
	f.Add(AppendBytes(AppendField(AppendResponseHead(nil, 200, 1), "A", "b"), []byte("x")))
	f.Add(AppendUint32(nil, 1<<31))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Request
		if err := DecodeRequest(b, &r); err == nil {
			again := AppendRequestHead(nil, string(r.Method), string(r.URI), len(r.Header))
			for _, h := range r.Header {
				again = AppendField(again, string(h.Name), string(h.Value))
			}
			if again = AppendBytes(again, r.Body); !bytes.Equal(again, b) {
				t.Fatalf("request %x encodes back as %x", b, again)
			}
		}
		var w Response
		if err := DecodeResponse(b, &w); err == nil {
			again := AppendResponseHead(nil, w.Status, len(w.Header))
			for _, h := range w.Header {
				again = AppendField(again, string(h.Name), string(h.Value))
			}
			if again = AppendBytes(again, w.Body); !bytes.Equal(again, b) {
				t.Fatalf("response %x encodes back as %x", b, again)
			}
		}
	})
}
