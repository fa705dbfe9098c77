// Package headwire encodes and decodes the heads of service invocation
// calls (Dapr's InternalInvokeRequest and InternalInvokeResponse) as
// protobuf, field by field with protowire instead of through the protobuf
// runtime's reflection: the same wire bytes that proto.Marshal writes and
// proto.Unmarshal reads, at a fraction of the cost for what heads usually
// hold (a method, a verb, a content type and a map of headers).
//
// The rare parts (an actor, a status's details, a protobuf body's Any) go
// through the protobuf runtime. A message with unknown fields is encoded by
// proto.Marshal; input that this decoder does not take field by field (an
// unknown field, an unexpected wire type, malformed bytes) is decoded by
// proto.Unmarshal, which keeps unknown fields and reports the errors. So
// the result is always what the protobuf runtime gives.
package headwire

import (
	"errors"
	"unicode/utf8"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// errSlow sends the decoding to the protobuf runtime.
var errSlow = errors.New("headwire: not decoded field by field")

// AppendRequest appends m's wire encoding to b.
func AppendRequest(b []byte, m *internalsv1.InternalInvokeRequest) ([]byte, error) {
	if hasUnknown(m) || hasUnknown(m.GetMessage()) || hasUnknown(m.GetMessage().GetHttpExtension()) || mapHasUnknown(m.GetMetadata()) {
		return proto.MarshalOptions{}.MarshalAppend(b, m)
	}
	if m.Ver != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(m.Ver)))
	}
	b = appendMap(b, 2, m.Metadata)
	if msg := m.Message; msg != nil {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		var err error
		if b, err = appendNested(b, func(b []byte) ([]byte, error) { return appendInvokeRequest(b, msg) }); err != nil {
			return nil, err
		}
	}
	if m.Actor != nil {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		return appendProto(b, m.Actor)
	}
	return b, nil
}

func appendInvokeRequest(b []byte, m *commonv1.InvokeRequest) ([]byte, error) {
	b = appendString(b, 1, m.Method)
	if m.Data != nil {
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		var err error
		if b, err = appendProto(b, m.Data); err != nil {
			return nil, err
		}
	}
	b = appendString(b, 3, m.ContentType)
	if ext := m.HttpExtension; ext != nil {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		n := 0
		if ext.Verb != 0 {
			n += protowire.SizeTag(1) + protowire.SizeVarint(uint64(int64(ext.Verb)))
		}
		if ext.Querystring != "" {
			n += protowire.SizeTag(2) + protowire.SizeBytes(len(ext.Querystring))
		}
		b = protowire.AppendVarint(b, uint64(n))
		if ext.Verb != 0 {
			b = protowire.AppendTag(b, 1, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(int64(ext.Verb)))
		}
		b = appendString(b, 2, ext.Querystring)
	}
	return b, nil
}

// AppendResponse appends m's wire encoding to b.
func AppendResponse(b []byte, m *internalsv1.InternalInvokeResponse) ([]byte, error) {
	if hasUnknown(m) || hasUnknown(m.GetStatus()) || hasUnknown(m.GetMessage()) || mapHasUnknown(m.GetHeaders()) || mapHasUnknown(m.GetTrailers()) {
		return proto.MarshalOptions{}.MarshalAppend(b, m)
	}
	var err error
	if st := m.Status; st != nil {
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		if b, err = appendNested(b, func(b []byte) ([]byte, error) { return appendStatus(b, st) }); err != nil {
			return nil, err
		}
	}
	b = appendMap(b, 2, m.Headers)
	b = appendMap(b, 3, m.Trailers)
	if msg := m.Message; msg != nil {
		b = protowire.AppendTag(b, 4, protowire.BytesType)
		b, err = appendNested(b, func(b []byte) ([]byte, error) {
			if msg.Data != nil {
				b = protowire.AppendTag(b, 1, protowire.BytesType)
				var err error
				if b, err = appendProto(b, msg.Data); err != nil {
					return nil, err
				}
			}
			return appendString(b, 2, msg.ContentType), nil
		})
		if err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendStatus(b []byte, st *internalsv1.Status) ([]byte, error) {
	if st.Code != 0 {
		b = protowire.AppendTag(b, 1, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(st.Code)))
	}
	b = appendString(b, 2, st.Message)
	for _, d := range st.Details {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		var err error
		if b, err = appendProto(b, d); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// appendNested appends a length-prefixed submessage written by f: the
// length goes in a one-byte placeholder, and the bytes move when it needs
// more.
func appendNested(b []byte, f func([]byte) ([]byte, error)) ([]byte, error) {
	at := len(b)
	b = append(b, 0)
	b, err := f(b)
	if err != nil {
		return nil, err
	}
	n := len(b) - at - 1
	if n < 0x80 {
		b[at] = byte(n)
		return b, nil
	}
	w := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, w-1)...)
	copy(b[at+w:], b[at+1:at+1+n])
	protowire.AppendVarint(b[at:at], uint64(n))
	return b, nil
}

// appendProto appends a length-prefixed message encoded by the runtime.
func appendProto(b []byte, m proto.Message) ([]byte, error) {
	b = protowire.AppendVarint(b, uint64(proto.Size(m)))
	return proto.MarshalOptions{}.MarshalAppend(b, m)
}

func appendString(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

// appendMap appends a map<string, ListStringValue> field, an entry each.
func appendMap(b []byte, num protowire.Number, m map[string]*internalsv1.ListStringValue) []byte {
	for k, v := range m {
		vn := 0
		for _, s := range v.GetValues() {
			vn += protowire.SizeTag(1) + protowire.SizeBytes(len(s))
		}
		// The entry: key (field 1) and value (field 2), both always written,
		// as the runtime writes map entries.
		n := protowire.SizeTag(1) + protowire.SizeBytes(len(k)) + protowire.SizeTag(2) + protowire.SizeBytes(vn)
		b = protowire.AppendTag(b, num, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(n))
		b = protowire.AppendTag(b, 1, protowire.BytesType)
		b = protowire.AppendString(b, k)
		b = protowire.AppendTag(b, 2, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(vn))
		for _, s := range v.GetValues() {
			b = protowire.AppendTag(b, 1, protowire.BytesType)
			b = protowire.AppendString(b, s)
		}
	}
	return b
}

func hasUnknown(m proto.Message) bool {
	if m == nil {
		return false
	}
	r := m.ProtoReflect()
	return r.IsValid() && len(r.GetUnknown()) > 0
}

func mapHasUnknown(m map[string]*internalsv1.ListStringValue) bool {
	for _, v := range m {
		if v != nil && len(v.ProtoReflect().GetUnknown()) > 0 {
			return true
		}
	}
	return false
}

// decoder holds what the decoded strings and lists share: one string copy
// of the input (each string is a piece of it) and slabs of lists, so that a
// head with ten headers costs a few allocations instead of forty.
type decoder struct {
	in     string
	lists  []internalsv1.ListStringValue
	values []string
	req    *requestParts
	resp   *responseParts
}

// slabs are the first lists and values of a head's map entries.
type slabs struct {
	lists  [8]internalsv1.ListStringValue
	values [16]string
}

// RequestParts is room for a decoded request's nested messages and its
// first metadata entries (UnmarshalRequestInto).
type RequestParts struct{ p requestParts }

// ResponseParts is room for a decoded response's nested messages and its
// first headers (UnmarshalResponseInto).
type ResponseParts struct{ p responseParts }

// requestParts and responseParts are a head's nested messages and slabs in
// one allocation.
type requestParts struct {
	msg commonv1.InvokeRequest
	ext commonv1.HTTPExtension
	slabs
}

type responseParts struct {
	status internalsv1.Status
	msg    commonv1.InvokeResponse
	slabs
}

// str sets *s to p, a piece of the input starting at off, which must be
// UTF-8 (proto3 strings are).
func (d *decoder) str(p []byte, off int, s *string) error {
	if len(p) == 0 {
		*s = ""
		return nil
	}
	if !utf8.Valid(p) {
		return errSlow
	}
	*s = d.in[off : off+len(p)]
	return nil
}

// list returns a new empty list.
func (d *decoder) list() *internalsv1.ListStringValue {
	if len(d.lists) == 0 {
		d.lists = make([]internalsv1.ListStringValue, 8)
	}
	l := &d.lists[0]
	d.lists = d.lists[1:]
	return l
}

// appendValue appends s to l's values; a list's first value takes a slot
// of the slab (with no room after it: a second value gets its own slice).
func (d *decoder) appendValue(l *internalsv1.ListStringValue, s string) {
	if l.Values != nil {
		l.Values = append(l.Values, s)
		return
	}
	if len(d.values) == 0 {
		d.values = make([]string, 16)
	}
	d.values[0] = s
	l.Values = d.values[0:1:1]
	d.values = d.values[1:]
}

// UnmarshalRequest decodes b into m, which it resets first. (It and
// UnmarshalResponse are two copies rather than one generic function: a
// decoder passed through a function value would escape to the heap.)
func UnmarshalRequest(b []byte, m *internalsv1.InternalInvokeRequest) error {
	return UnmarshalRequestInto(b, m, new(RequestParts))
}

// UnmarshalRequestInto is UnmarshalRequest with room for what m will point
// to in parts, which the caller allocates with m (one allocation less);
// parts serves one decode and must live as long as m.
func UnmarshalRequestInto(b []byte, m *internalsv1.InternalInvokeRequest, parts *RequestParts) error {
	proto.Reset(m)
	d := &decoder{in: string(b), lists: parts.p.lists[:], values: parts.p.values[:], req: &parts.p}
	if err := d.request(b, m); err != nil {
		proto.Reset(m)
		return proto.Unmarshal(b, m)
	}
	return nil
}

// UnmarshalResponse decodes b into m, which it resets first.
func UnmarshalResponse(b []byte, m *internalsv1.InternalInvokeResponse) error {
	return UnmarshalResponseInto(b, m, new(ResponseParts))
}

// UnmarshalResponseInto is UnmarshalResponse with room for what m will
// point to in parts, as UnmarshalRequestInto.
func UnmarshalResponseInto(b []byte, m *internalsv1.InternalInvokeResponse, parts *ResponseParts) error {
	proto.Reset(m)
	d := &decoder{in: string(b), lists: parts.p.lists[:], values: parts.p.values[:], resp: &parts.p}
	if err := d.response(b, m); err != nil {
		proto.Reset(m)
		return proto.Unmarshal(b, m)
	}
	return nil
}

func (d *decoder) request(b []byte, m *internalsv1.InternalInvokeRequest) error {
	return fields(b, 0, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			m.Ver = internalsv1.APIVersion(int32(v)) //nolint:gosec // the runtime truncates enums the same way
		case num == 2 && typ == protowire.BytesType:
			if m.Metadata == nil {
				m.Metadata = make(map[string]*internalsv1.ListStringValue, 8)
			}
			return d.entry(p, off, m.Metadata)
		case num == 3 && typ == protowire.BytesType:
			if m.Message == nil {
				m.Message = &d.req.msg
			}
			return d.invokeRequest(p, off, m.Message)
		case num == 4 && typ == protowire.BytesType:
			if m.Actor == nil {
				m.Actor = &internalsv1.Actor{}
			}
			return proto.UnmarshalOptions{Merge: true}.Unmarshal(p, m.Actor)
		default:
			return errSlow
		}
		return nil
	})
}

func (d *decoder) invokeRequest(b []byte, base int, m *commonv1.InvokeRequest) error {
	return fields(b, base, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			return d.str(p, off, &m.Method)
		case num == 2 && typ == protowire.BytesType:
			if m.Data == nil {
				m.Data = &anypb.Any{}
			}
			return proto.UnmarshalOptions{Merge: true}.Unmarshal(p, m.Data)
		case num == 3 && typ == protowire.BytesType:
			return d.str(p, off, &m.ContentType)
		case num == 4 && typ == protowire.BytesType:
			if m.HttpExtension == nil {
				m.HttpExtension = &d.req.ext
			}
			ext := m.HttpExtension
			return fields(p, off, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					ext.Verb = commonv1.HTTPExtension_Verb(int32(v)) //nolint:gosec // as the runtime does
				case num == 2 && typ == protowire.BytesType:
					return d.str(p, off, &ext.Querystring)
				default:
					return errSlow
				}
				return nil
			})
		default:
			return errSlow
		}
	})
}

func (d *decoder) response(b []byte, m *internalsv1.InternalInvokeResponse) error {
	return fields(b, 0, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			if m.Status == nil {
				m.Status = &d.resp.status
			}
			st := m.Status
			return fields(p, off, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
				switch {
				case num == 1 && typ == protowire.VarintType:
					st.Code = int32(v) //nolint:gosec // int32 fields truncate, as in the runtime
				case num == 2 && typ == protowire.BytesType:
					return d.str(p, off, &st.Message)
				case num == 3 && typ == protowire.BytesType:
					d := &anypb.Any{}
					if err := proto.Unmarshal(p, d); err != nil {
						return err
					}
					st.Details = append(st.Details, d)
				default:
					return errSlow
				}
				return nil
			})
		case num == 2 && typ == protowire.BytesType:
			if m.Headers == nil {
				m.Headers = make(map[string]*internalsv1.ListStringValue, 8)
			}
			return d.entry(p, off, m.Headers)
		case num == 3 && typ == protowire.BytesType:
			if m.Trailers == nil {
				m.Trailers = make(map[string]*internalsv1.ListStringValue)
			}
			return d.entry(p, off, m.Trailers)
		case num == 4 && typ == protowire.BytesType:
			if m.Message == nil {
				m.Message = &d.resp.msg
			}
			msg := m.Message
			return fields(p, off, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					if msg.Data == nil {
						msg.Data = &anypb.Any{}
					}
					return proto.UnmarshalOptions{Merge: true}.Unmarshal(p, msg.Data)
				case num == 2 && typ == protowire.BytesType:
					return d.str(p, off, &msg.ContentType)
				default:
					return errSlow
				}
			})
		default:
			return errSlow
		}
	})
}

// entry decodes one map entry, at off in the input, into m: a later
// entry with the same key replaces an earlier one, and a missing value is
// an empty list, as in the runtime.
func (d *decoder) entry(b []byte, base int, m map[string]*internalsv1.ListStringValue) error {
	var key string
	var val *internalsv1.ListStringValue
	err := fields(b, base, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
		switch {
		case num == 1 && typ == protowire.BytesType:
			return d.str(p, off, &key)
		case num == 2 && typ == protowire.BytesType:
			if val == nil {
				val = d.list()
			}
			return fields(p, off, func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error {
				if num != 1 || typ != protowire.BytesType {
					return errSlow
				}
				var s string
				if err := d.str(p, off, &s); err != nil {
					return err
				}
				d.appendValue(val, s)
				return nil
			})
		default:
			return errSlow
		}
	})
	if err != nil {
		return err
	}
	if val == nil {
		val = d.list()
	}
	m[key] = val
	return nil
}

// fields calls f with each field of b, which starts at base in the input:
// its number and type, and its value (v for varints, p for length-delimited
// bytes, which start at off). Other wire types and malformed input end it
// with errSlow.
func fields(b []byte, base int, f func(num protowire.Number, typ protowire.Type, v uint64, p []byte, off int) error) error {
	end := base + len(b)
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errSlow
		}
		b = b[n:]
		var v uint64
		var p []byte
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(b)
		case protowire.BytesType:
			p, n = protowire.ConsumeBytes(b)
		default:
			return errSlow
		}
		if n < 0 {
			return errSlow
		}
		b = b[n:]
		off := end - len(b) - len(p)
		if err := f(num, typ, v, p, off); err != nil {
			return err
		}
	}
	return nil
}
