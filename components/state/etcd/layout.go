package etcd

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/tandemrun/tandem/components/state"
)

// layout is how a value is kept in etcd (spec.version).
type layout interface {
	encode(value []byte, ttlSeconds int, now time.Time) []byte
	// decode returns the value and the response metadata (ttlExpireTime).
	decode(stored []byte) ([]byte, map[string]string, error)
}

// layoutV1 keeps the value as it is (the TTL lives only in the lease).
type layoutV1 struct{}

func (layoutV1) encode(value []byte, _ int, _ time.Time) []byte { return value }

func (layoutV1) decode(stored []byte) ([]byte, map[string]string, error) { return stored, nil, nil }

// layoutV2 is Dapr's v2 envelope, the protobuf message
// dapr.proto.components.state.v2.Value: data (1, bytes), ts (2,
// google.protobuf.Timestamp, the write time) and ttl (3,
// google.protobuf.Duration, optional).
type layoutV2 struct{}

func (layoutV2) encode(value []byte, ttlSeconds int, now time.Time) []byte {
	b := protowire.AppendTag(nil, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, value)
	b = appendMessage(b, 2, timestamppb.New(now.UTC()))
	if ttlSeconds > 0 {
		b = appendMessage(b, 3, durationpb.New(time.Duration(ttlSeconds)*time.Second))
	}
	return b
}

// appendMessage appends field num holding m.
func appendMessage(b []byte, num protowire.Number, m proto.Message) []byte {
	v, err := proto.Marshal(m)
	if err != nil {
		// A Timestamp or Duration of a real time always marshals.
		panic(err)
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func (layoutV2) decode(stored []byte) ([]byte, map[string]string, error) {
	var data []byte
	var ts timestamppb.Timestamp
	var ttl *durationpb.Duration
	for len(stored) > 0 {
		num, typ, n := protowire.ConsumeTag(stored)
		if n < 0 {
			return nil, nil, fmt.Errorf("v2 value: %w", protowire.ParseError(n))
		}
		stored = stored[n:]
		if typ != protowire.BytesType {
			if n = protowire.ConsumeFieldValue(num, typ, stored); n < 0 {
				return nil, nil, fmt.Errorf("v2 value: %w", protowire.ParseError(n))
			}
			stored = stored[n:]
			continue
		}
		v, n := protowire.ConsumeBytes(stored)
		if n < 0 {
			return nil, nil, fmt.Errorf("v2 value: %w", protowire.ParseError(n))
		}
		stored = stored[n:]
		switch num {
		case 1:
			data = v
		case 2:
			if err := proto.Unmarshal(v, &ts); err != nil {
				return nil, nil, fmt.Errorf("v2 value ts: %w", err)
			}
		case 3:
			ttl = &durationpb.Duration{}
			if err := proto.Unmarshal(v, ttl); err != nil {
				return nil, nil, fmt.Errorf("v2 value ttl: %w", err)
			}
		}
	}
	var md map[string]string
	if ttl != nil && ttl.AsDuration() > 0 {
		md = state.ExpireTimeMetadata(ts.AsTime().Add(ttl.AsDuration()))
	}
	return data, md, nil
}
