package transport

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"

	"google.golang.org/grpc/codes"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// frames encodes a call's frames as the writer does.
func frames(tb testing.TB, head []byte, body []byte, end bool) []byte {
	tb.Helper()
	var out bytes.Buffer
	w := &frameWriter{w: &out}
	if head != nil {
		if err := w.frame(frameHead, head); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.data(body); err != nil {
		tb.Fatal(err)
	}
	if end {
		if err := w.frame(frameEnd, nil); err != nil {
			tb.Fatal(err)
		}
	}
	if err := w.flush(); err != nil {
		tb.Fatal(err)
	}
	return out.Bytes()
}

// notFoundFrame is a status frame of NotFound "gone".
func notFoundFrame(tb testing.TB) *bytes.Buffer {
	tb.Helper()
	st, err := proto.Marshal(grpcstatus.New(codes.NotFound, "gone").Proto())
	if err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	w := &frameWriter{w: &out}
	if err := w.frame(frameStatus, st); err != nil {
		tb.Fatal(err)
	}
	if err := w.flush(); err != nil {
		tb.Fatal(err)
	}
	return &out
}

func TestFrameRoundTrip(t *testing.T) {
	statusFrame := notFoundFrame(t)
	cases := []struct {
		name    string
		in      []byte
		body    []byte
		wantErr codes.Code
	}{
		{"empty body", frames(t, []byte("h"), nil, true), nil, codes.OK},
		{"small body", frames(t, []byte("h"), []byte("hello"), true), []byte("hello"), codes.OK},
		{"body of several frames", frames(t, []byte("h"), bytes.Repeat([]byte("x"), 3*dataFrameMax+7), true), bytes.Repeat([]byte("x"), 3*dataFrameMax+7), codes.OK},
		{"status after body", append(frames(t, []byte("h"), []byte("part"), false), statusFrame.Bytes()...), []byte("part"), codes.NotFound},
		{"cut short", frames(t, []byte("h"), []byte("hello"), false), []byte("hello"), codes.Unknown},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			fr := &frameReader{br: bufio.NewReader(bytes.NewReader(tc.in)), max: 1 << 20}
			typ, head, err := fr.next()
			if err != nil || typ != frameHead || string(head) != "h" {
				t.Fatalf("head = %d %q %v", typ, head, err)
			}
			got, err := io.ReadAll(&bodyReader{fr: fr})
			if !bytes.Equal(got, tc.body) {
				t.Errorf("body = %d bytes, want %d", len(got), len(tc.body))
			}
			switch {
			case tc.wantErr == codes.OK && err != nil:
				t.Errorf("err = %v", err)
			case tc.wantErr == codes.Unknown && !errors.Is(err, io.ErrUnexpectedEOF):
				t.Errorf("err = %v, want unexpected EOF", err)
			case tc.wantErr != codes.OK && tc.wantErr != codes.Unknown && grpcstatus.Code(err) != tc.wantErr:
				t.Errorf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestFrameReaderEOF: a connection that ends between frames is io.EOF (a
// clean end the pool can tell apart), one that ends inside a frame header
// io.ErrUnexpectedEOF.
func TestFrameReaderEOF(t *testing.T) {
	whole := frames(t, []byte("h"), nil, true)
	for _, tc := range []struct {
		name string
		in   []byte
		want error
	}{
		{"nothing", nil, io.EOF},
		{"part of a header", whole[:3], io.ErrUnexpectedEOF},
	} {
		fr := &frameReader{br: bufio.NewReader(bytes.NewReader(tc.in)), max: 1 << 20}
		if _, _, err := fr.next(); err != tc.want {
			t.Errorf("%s: err = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// FuzzFrameReader: any byte stream is read without panic, and no head
// larger than the limit is allocated.
func FuzzFrameReader(f *testing.F) {
	f.Add(frames(f, []byte("head"), []byte("body"), true))
	f.Add(frames(f, []byte{}, bytes.Repeat([]byte("y"), 70000), true))
	f.Add([]byte{frameStatus, 0, 0, 0, 2, 8, 5})
	f.Add([]byte{frameHead, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{frameData, 0, 0, 0, 9, 1})
	f.Add([]byte{9, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, in []byte) {
		const limit = 4096
		fr := &frameReader{br: bufio.NewReader(bytes.NewReader(in)), max: limit}
		for i := 0; i < 64; i++ {
			typ, payload, err := fr.next()
			if err != nil {
				return
			}
			if len(payload) > limit {
				t.Fatalf("payload of %d bytes past the %d limit", len(payload), limit)
			}
			if typ == frameHead {
				body := &bodyReader{fr: fr}
				if _, err := io.Copy(io.Discard, body); err != nil {
					return
				}
			}
		}
	})
}

// TestBodyReady: ready is true exactly when the next Read returns without
// reading the connection.
func TestBodyReady(t *testing.T) {
	statusFrame := notFoundFrame(t)
	whole := frames(t, nil, []byte("hello"), true)
	cases := []struct {
		name string
		in   []byte
		// read: bytes read from the body before asking.
		read int
		want bool
	}{
		{"nothing came", nil, 0, false},
		{"part of a frame header", whole[:3], 0, false},
		{"a data frame's header only", whole[:frameHeaderLen], 0, false},
		{"a data frame's first byte", whole[:frameHeaderLen+1], 0, true},
		{"the rest of a data frame", whole[:frameHeaderLen+3], 1, true},
		{"a data frame read, nothing after", whole[:frameHeaderLen+5], 5, false},
		{"a data frame read, the end buffered", whole, 5, true},
		{"a status frame in part", statusFrame.Bytes()[:frameHeaderLen+1], 0, false},
		{"a whole status frame", statusFrame.Bytes(), 0, true},
		{"an empty data frame", frames(t, nil, nil, false), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			// The reader counts reads of the "connection" after the setup.
			src := &countingReader{r: bytes.NewReader(tc.in)}
			br := bufio.NewReader(src)
			_, _ = br.Peek(len(tc.in)) // all that came is buffered
			fr := &frameReader{br: br, max: 1 << 20}
			b := &bodyReader{fr: fr}
			if tc.read > 0 {
				buf := make([]byte, tc.read)
				if _, err := io.ReadFull(b, buf); err != nil {
					t.Fatal(err)
				}
			}
			if got := b.ready(); got != tc.want {
				t.Fatalf("ready = %v, want %v", got, tc.want)
			}
			if !tc.want {
				return
			}
			reads := src.reads
			_, _ = b.Read(make([]byte, 8))
			if src.reads != reads {
				t.Errorf("ready, but Read read the connection")
			}
		})
	}
}

type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(p []byte) (int, error) {
	c.reads++
	return c.r.Read(p)
}
