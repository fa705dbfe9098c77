package h1server

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"testing"
)

// parseFastCases are requests parseFast must take (fast) or leave to
// http.ReadRequest; either way what comes out must be net/http's.
var parseFastCases = []struct {
	name string
	req  string
	fast bool
}{
	{"get", "GET /v1.0/healthz HTTP/1.1\r\nHost: 127.0.0.1:3500\r\nUser-Agent: Go-http-client/1.1\r\n\r\n", true},
	{"post with a body", "POST /v1.0/invoke/callee/method/echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Type: application/json\r\n\r\nhello", true},
	{"body and the next request", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nHost: h\r\n\r\n", true},
	{"short body", "PUT /a HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc", true},
	{"zero length", "DELETE /a HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", true},
	{"leading zeros in the length", "PATCH /a HTTP/1.1\r\nHost: h\r\nContent-Length: 003\r\n\r\nabcdef", true},
	{"query", "GET /v1.0/state/s?metadata.partitionKey=a&b=c%20d HTTP/1.1\r\nHost: h\r\n\r\n", true},
	{"path characters", "GET /a-b_c.d~e/$&+,:;=@/x HTTP/1.1\r\nHost: h\r\n\r\n", true},
	{"double slash", "GET //a//b HTTP/1.1\r\nHost: h\r\n\r\n", true},
	{"lower-case names and repeats", "HEAD /a HTTP/1.1\r\nhost: h\r\nx-custom: 1\r\nX-Custom: 2\r\naccept: */*\r\ndapr-api-token: t\r\n\r\n", true},
	{"white space around values", "OPTIONS /a HTTP/1.1\r\nHost:  h \r\nX-A:\t v \t\r\nX-Empty:\r\n\r\n", true},
	{"empty host", "GET /a HTTP/1.1\r\nHost:\r\n\r\n", true},
	{"connection close", "GET /a HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, close\r\n\r\n", true},
	{"expect", "POST /a HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx", true},
	{"traceparent", "POST /v1.0/publish/p/t HTTP/1.1\r\nHost: h\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nContent-Length: 2\r\n\r\n{}", true},
	{"non-ASCII value", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: caf\xc3\xa9\r\n\r\n", true},

	{"HTTP/1.0", "GET /a HTTP/1.0\r\nHost: h\r\n\r\n", false},
	{"no Host", "GET /a HTTP/1.1\r\nX-A: b\r\n\r\n", false},
	{"two Hosts", "GET /a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
	{"bad Host", "GET /a HTTP/1.1\r\nHost: a b\r\n\r\n", false},
	{"chunked", "POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n", false},
	{"trailer", "POST /a HTTP/1.1\r\nHost: h\r\nTrailer: X-T\r\nContent-Length: 1\r\n\r\nx", false},
	{"pragma", "GET /a HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n", false},
	{"two lengths", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false},
	{"signed length", "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\nx", false},
	{"escaped path", "GET /a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"path with a character to escape", "GET /a'b HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"empty query", "GET /a? HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"fragment", "GET /a?b#c HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"absolute URI", "GET http://h/a HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"other method", "PROPFIND /a HTTP/1.1\r\nHost: h\r\n\r\n", false},
	{"continuation line", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: b\r\n c\r\n\r\n", false},
	{"bare LF", "GET /a HTTP/1.1\nHost: h\n\n", false},
	{"control byte", "GET /a HTTP/1.1\r\nHost: h\r\nX-A: b\x01\r\n\r\n", false},
	{"space before the colon", "GET /a HTTP/1.1\r\nHost : h\r\n\r\n", false},
	{"no colon", "GET /a HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n", false},
	{"two spaces in the request line", "GET  /a HTTP/1.1\r\nHost: h\r\n\r\n", false},
}

func TestParseFastAsReadRequest(t *testing.T) {
	for _, tc := range parseFastCases {
		t.Run(tc.name, func(t *testing.T) {
			if got := compareParseFast(t, []byte(tc.req)); got != tc.fast {
				t.Errorf("parseFast took it: %v, want %v", got, tc.fast)
			}
		})
	}
}

// FuzzParseFastAsReadRequest checks that whatever parseFast takes,
// http.ReadRequest and the server's checks take too, with the same
// request, body and what is left after it.
func FuzzParseFastAsReadRequest(f *testing.F) {
	for _, tc := range parseFastCases {
		f.Add([]byte(tc.req))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		compareParseFast(t, data)
	})
}

// TestParseFastAllocations bounds what parsing a typical invocation
// costs: the header's string, the header map (two allocations up to eight
// names), its values and the request.
func TestParseFastAllocations(t *testing.T) {
	raw := []byte("POST /v1.0/invoke/callee/method/echo HTTP/1.1\r\nHost: 127.0.0.1:3500\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: 4\r\nContent-Type: application/octet-stream\r\nAccept-Encoding: gzip\r\n\r\nbody")
	rd := bytes.NewReader(raw)
	br := bufio.NewReader(rd)
	allocs := testing.AllocsPerRun(100, func() {
		rd.Reset(raw)
		br.Reset(rd)
		_, _ = br.Peek(len(raw))
		header, whole := bufferedHeader(br)
		if !whole {
			t.Fatal("header not whole")
		}
		if _, ok := parseFast(br, header); !ok {
			t.Fatal("parseFast did not take a typical request")
		}
	})
	if allocs > 5 {
		t.Errorf("parseFast: %v allocations, want at most 5", allocs)
	}
}

// compareParseFast parses data with parseFast and, when it takes the
// request, with http.ReadRequest and check, and fails on any difference.
// It reports whether parseFast took it.
func compareParseFast(t *testing.T, data []byte) bool {
	t.Helper()
	br := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	_, _ = br.Peek(min(len(data), 4096))
	header, whole := bufferedHeader(br)
	if !whole {
		return false
	}
	hosts := scanHosts(header)
	buffered := br.Buffered()
	got, ok := parseFast(br, header)
	if !ok {
		if br.Buffered() != buffered {
			t.Fatalf("parseFast left the request but read %d bytes", buffered-br.Buffered())
		}
		return false
	}
	wantBr := bufio.NewReaderSize(bytes.NewReader(data), 4096)
	want, err := http.ReadRequest(wantBr)
	if err == nil {
		err = check(want, hosts)
	}
	if err != nil {
		t.Fatalf("parseFast took %q, which net/http refuses: %v", data, err)
	}
	for _, f := range []struct {
		name      string
		got, want any
	}{
		{"Method", got.Method, want.Method},
		{"RequestURI", got.RequestURI, want.RequestURI},
		{"Proto", got.Proto, want.Proto},
		{"ProtoMajor", got.ProtoMajor, want.ProtoMajor},
		{"ProtoMinor", got.ProtoMinor, want.ProtoMinor},
		{"URL", *got.URL, *want.URL},
		{"Header", got.Header, want.Header},
		{"Host", got.Host, want.Host},
		{"Close", got.Close, want.Close},
		{"ContentLength", got.ContentLength, want.ContentLength},
		{"TransferEncoding", got.TransferEncoding, want.TransferEncoding},
		{"Trailer", got.Trailer, want.Trailer},
		{"Body is NoBody", got.Body == http.NoBody, want.Body == http.NoBody},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Fatalf("%q: %s = %#v, net/http's %#v", data, f.name, f.got, f.want)
		}
	}
	gotBody, gotErr := readBody(got.Body)
	wantBody, wantErr := readBody(want.Body)
	if !bytes.Equal(gotBody, wantBody) || gotErr != wantErr {
		t.Fatalf("%q: body %q (%v), net/http's %q (%v)", data, gotBody, gotErr, wantBody, wantErr)
	}
	gotRest, _ := io.ReadAll(br)
	wantRest, _ := io.ReadAll(wantBr)
	if !bytes.Equal(gotRest, wantRest) {
		t.Fatalf("%q: %q left after the request, net/http leaves %q", data, gotRest, wantRest)
	}
	return true
}

// readBody reads a body to its end, then once more: what it read, and
// what the reads ended with.
func readBody(body io.Reader) ([]byte, string) {
	b, err := io.ReadAll(body)
	n, err2 := body.Read(make([]byte, 1))
	return b, fmt.Sprintf("%v, then %d, %v", err, n, err2)
}
