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

func TestFrameRoundTrip(t *testing.T) {
	st, _ := proto.Marshal(grpcstatus.New(codes.NotFound, "gone").Proto())
	var statusFrame bytes.Buffer
	w := &frameWriter{w: &statusFrame}
	_ = w.frame(frameStatus, st)
	_ = w.flush()
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
