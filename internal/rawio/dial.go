package rawio

import (
	"context"
	"net"
)

// Dial connects to a TCP address and wraps the connection (Wrap). A gRPC
// client takes it as grpc.WithContextDialer(rawio.Dial), with a target
// that resolves to host:port addresses (passthrough, dns).
func Dial(ctx context.Context, addr string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
