package grpcproxy

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	// The proto codec is the fallback for every non-proxied message.
	_ "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
)

// frame is one gRPC message carried without decoding. It holds a reference
// to gRPC's receive buffers, which passes to gRPC again when the frame is
// sent, so proxying copies no payload bytes.
type frame struct {
	data mem.BufferSlice
}

// codec passes frames through and hands any other message to the proto
// codec, so a server with proxied and ordinary services can use it.
type codec struct {
	fallback encoding.CodecV2
}

func newCodec() codec {
	return codec{fallback: encoding.GetCodecV2("proto")}
}

func (c codec) Marshal(v any) (mem.BufferSlice, error) {
	if f, ok := v.(*frame); ok {
		out := f.data
		f.data = nil // gRPC frees what Marshal returns
		return out, nil
	}
	return c.fallback.Marshal(v)
}

func (c codec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*frame); ok {
		data.Ref() // keep the buffers past this call; Marshal hands them on
		f.data = data
		return nil
	}
	return c.fallback.Unmarshal(data, v)
}

// Name is "proto": the frames are protobuf messages the proxy never parses.
func (codec) Name() string { return "proto" }

// ServerOption makes a server read unknown (proxied) methods as raw frames.
// Add it to the sidecar's public and internal gRPC servers.
func ServerOption() grpc.ServerOption {
	return grpc.ForceServerCodecV2(newCodec())
}

func callOption() grpc.CallOption {
	return grpc.ForceCodecV2(newCodec())
}
