package headwire

import (
	"strings"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func list(v ...string) *internalsv1.ListStringValue { return &internalsv1.ListStringValue{Values: v} }

func requests(t testing.TB) []*internalsv1.InternalInvokeRequest {
	data, err := anypb.New(wrapperspb.String("hello"))
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 300) // lengths of more than one varint byte
	return []*internalsv1.InternalInvokeRequest{
		{},
		{Ver: internalsv1.APIVersion_V1, Message: &commonv1.InvokeRequest{}},
		{
			Ver: internalsv1.APIVersion_V1,
			Metadata: map[string]*internalsv1.ListStringValue{
				"user-agent": list("fortio"), "dapr-caller-app-id": list("caller"), "x-many": list("a", "", "c"),
				"empty": list(), "nil": nil, "": list("no name"), "long": list(long),
			},
			Message: &commonv1.InvokeRequest{
				Method: "orders/" + long, ContentType: "application/json",
				HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST, Querystring: "a=1&b=" + long},
			},
		},
		{Message: &commonv1.InvokeRequest{Method: "m", Data: data, HttpExtension: &commonv1.HTTPExtension{}}},
		{Ver: -3, Message: &commonv1.InvokeRequest{HttpExtension: &commonv1.HTTPExtension{Verb: -1}}},
		{Actor: &internalsv1.Actor{ActorType: "cart", ActorId: "1"}, Message: &commonv1.InvokeRequest{Method: "add"}},
	}
}

func responses(t testing.TB) []*internalsv1.InternalInvokeResponse {
	data, err := anypb.New(wrapperspb.Int64(42))
	if err != nil {
		t.Fatal(err)
	}
	return []*internalsv1.InternalInvokeResponse{
		{},
		{Status: &internalsv1.Status{Code: 200}},
		{
			Status:   &internalsv1.Status{Code: 13, Message: "boom", Details: []*anypb.Any{data, {}}},
			Headers:  map[string]*internalsv1.ListStringValue{"content-type": list("text/plain"), "set-cookie": list("a=1", "b=2")},
			Trailers: map[string]*internalsv1.ListStringValue{"grpc-status": list("0")},
			Message:  &commonv1.InvokeResponse{Data: data, ContentType: "application/x-protobuf"},
		},
		{Status: &internalsv1.Status{Code: -1}, Message: &commonv1.InvokeResponse{ContentType: strings.Repeat("y", 200)}},
	}
}

// TestRoundTrip: what this package writes the runtime reads back equal,
// and what the runtime writes this package reads back equal.
func TestRoundTrip(t *testing.T) {
	for i, m := range requests(t) {
		b, err := AppendRequest(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		got := &internalsv1.InternalInvokeRequest{}
		if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("request %d: the runtime read %v (%v), want %v", i, got, err, m)
		}
		std, _ := proto.Marshal(m)
		got = &internalsv1.InternalInvokeRequest{Metadata: map[string]*internalsv1.ListStringValue{"stale": nil}}
		if err := UnmarshalRequest(std, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("request %d: read %v (%v), want %v", i, got, err, m)
		}
	}
	for i, m := range responses(t) {
		b, err := AppendResponse([]byte("prefix"), m)
		if err != nil {
			t.Fatal(err)
		}
		got := &internalsv1.InternalInvokeResponse{}
		if err := proto.Unmarshal(b[len("prefix"):], got); err != nil || !proto.Equal(got, m) {
			t.Errorf("response %d: the runtime read %v (%v), want %v", i, got, err, m)
		}
		std, _ := proto.Marshal(m)
		got = &internalsv1.InternalInvokeResponse{Status: &internalsv1.Status{Code: 1}}
		if err := UnmarshalResponse(std, got); err != nil || !proto.Equal(got, m) {
			t.Errorf("response %d: read %v (%v), want %v", i, got, err, m)
		}
	}
}

// TestOddInput: input the field-by-field decoder leaves to the runtime
// gives the runtime's result: unknown fields kept, errors reported.
func TestOddInput(t *testing.T) {
	unknown := protowire.AppendTag(nil, 99, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 7)
	valid, _ := proto.Marshal(&internalsv1.InternalInvokeRequest{Message: &commonv1.InvokeRequest{Method: "m"}})
	badUTF8 := protowire.AppendTag(nil, 3, protowire.BytesType)
	badUTF8 = protowire.AppendBytes(badUTF8, protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "\xff"))
	wrongType := protowire.AppendTag(nil, 1, protowire.BytesType)
	wrongType = protowire.AppendString(wrongType, "v1")
	for name, in := range map[string][]byte{
		"unknown field":        append(append([]byte{}, valid...), unknown...),
		"invalid UTF-8":        badUTF8,
		"wire type of another": wrongType,
		"cut short":            valid[:len(valid)-1],
		"a group":              protowire.AppendTag(nil, 1, protowire.StartGroupType),
	} {
		want := &internalsv1.InternalInvokeRequest{}
		wantErr := proto.Unmarshal(in, want)
		got := &internalsv1.InternalInvokeRequest{}
		err := UnmarshalRequest(in, got)
		if (err == nil) != (wantErr == nil) || (err == nil && !proto.Equal(got, want)) {
			t.Errorf("%s: got %v (%v), the runtime %v (%v)", name, got, err, want, wantErr)
		}
	}
	// A message with unknown fields is written by the runtime, with them.
	m := &internalsv1.InternalInvokeRequest{}
	if err := proto.Unmarshal(append(append([]byte{}, valid...), unknown...), m); err != nil {
		t.Fatal(err)
	}
	b, err := AppendRequest(nil, m)
	if err != nil {
		t.Fatal(err)
	}
	got := &internalsv1.InternalInvokeRequest{}
	if err := proto.Unmarshal(b, got); err != nil || !proto.Equal(got, m) {
		t.Errorf("unknown field lost: %v", got)
	}
}

// FuzzUnmarshal: for any input, the decoder agrees with the runtime.
func FuzzUnmarshal(f *testing.F) {
	for _, m := range requests(f) {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	for _, m := range responses(f) {
		b, _ := proto.Marshal(m)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		agrees(t, "request", in, func() *internalsv1.InternalInvokeRequest { return &internalsv1.InternalInvokeRequest{} },
			UnmarshalRequest, AppendRequest)
		agrees(t, "response", in, func() *internalsv1.InternalInvokeResponse { return &internalsv1.InternalInvokeResponse{} },
			UnmarshalResponse, AppendResponse)
	})
}

// agrees checks that unmarshal reads in as the runtime does, and that what
// it read survives a round trip through appendTo and the runtime.
func agrees[M proto.Message](t *testing.T, what string, in []byte, newM func() M, unmarshal func([]byte, M) error, appendTo func([]byte, M) ([]byte, error)) {
	t.Helper()
	want, got := newM(), newM()
	wantErr := proto.Unmarshal(in, want)
	err := unmarshal(in, got)
	if (err == nil) != (wantErr == nil) || (err == nil && !proto.Equal(got, want)) {
		t.Fatalf("%s: got %v (%v), the runtime %v (%v)", what, got, err, want, wantErr)
	}
	if err != nil {
		return
	}
	b, err := appendTo(nil, got)
	back := newM()
	if err != nil || proto.Unmarshal(b, back) != nil || !proto.Equal(back, got) {
		t.Fatalf("%s %v does not survive a round trip (%v)", what, got, err)
	}
}

func BenchmarkRequest(b *testing.B) {
	m := requests(b)[2]
	std, _ := proto.Marshal(m)
	b.Run("append/headwire", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf, _ = AppendRequest(buf[:0], m)
		}
	})
	b.Run("append/proto", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 2048)
		for b.Loop() {
			buf, _ = proto.MarshalOptions{}.MarshalAppend(buf[:0], m)
		}
	})
	b.Run("unmarshal/headwire", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = UnmarshalRequest(std, &internalsv1.InternalInvokeRequest{})
		}
	})
	b.Run("unmarshal/proto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = proto.Unmarshal(std, &internalsv1.InternalInvokeRequest{})
		}
	})
}
