package grpcproxy

import (
	"context"
	"errors"
	"io"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

var proxyStreamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// pipe copies frames both ways between the incoming call ss and the
// upstream call cs until the upstream ends, then relays its headers,
// trailers and status. cancel ends the upstream call.
func pipe(ss grpc.ServerStream, cs grpc.ClientStream, cancel context.CancelFunc) error {
	return pipeFrom(ss, cs, cancel, func(cs grpc.ClientStream) error { return forwardUp(ss, cs) })
}

// pipeFrom is pipe with up sending the caller's side upstream.
func pipeFrom(ss grpc.ServerStream, cs grpc.ClientStream, cancel context.CancelFunc, up func(grpc.ClientStream) error) error {
	upErr := make(chan error, 1)
	go func() {
		err := up(cs)
		if err != nil {
			cancel() // the caller went away: abandon the upstream call
		}
		upErr <- err
	}()

	err := forwardDown(cs, ss)
	cancel()
	if err != nil {
		select {
		case uerr := <-upErr:
			if uerr != nil {
				if _, ok := status.FromError(uerr); ok {
					return uerr
				}
				return status.Errorf(codes.Canceled, "proxied call ended: %v", uerr)
			}
		default:
		}
	}
	return err
}

// forwardUp sends the caller's messages upstream and half-closes at its end.
func forwardUp(ss grpc.ServerStream, cs grpc.ClientStream) error {
	var f frame
	for {
		if err := ss.RecvMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return cs.CloseSend()
			}
			return err
		}
		if err := cs.SendMsg(&f); err != nil {
			if errors.Is(err, io.EOF) {
				return nil // upstream finished; its status comes via RecvMsg
			}
			return err
		}
	}
}

// forwardDown relays the upstream's headers, messages and trailers.
func forwardDown(cs grpc.ClientStream, ss grpc.ServerStream) error {
	var f frame
	headerSent := false
	for {
		if err := cs.RecvMsg(&f); err != nil {
			if !headerSent {
				if md, herr := cs.Header(); herr == nil && len(md) > 0 {
					_ = ss.SetHeader(md)
				}
			}
			ss.SetTrailer(cs.Trailer())
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		if !headerSent {
			headerSent = true
			md, err := cs.Header()
			if err != nil {
				return err
			}
			if err := ss.SendHeader(md); err != nil {
				return err
			}
		}
		if err := ss.SendMsg(&f); err != nil {
			return err
		}
	}
}

// outgoingMD copies the incoming metadata for the upstream call, without
// HTTP/2 pseudo-headers.
func outgoingMD(in metadata.MD) metadata.MD {
	out := make(metadata.MD, len(in)+3)
	for k, v := range in {
		if strings.HasPrefix(k, ":") {
			continue
		}
		out[k] = append([]string(nil), v...)
	}
	return out
}

func first(md metadata.MD, key string) string {
	if v := md[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}
