package appchannel

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// WaitReady blocks until the app at address:port accepts TCP connections,
// trying every interval (100ms when 0), or until ctx ends. The sidecar
// declares itself ready only after this, like daprd; outbound APIs do not
// wait for it.
func WaitReady(ctx context.Context, address string, port int, interval time.Duration) error {
	if address == "" {
		address = "127.0.0.1"
	}
	if interval <= 0 {
		interval = 100 * time.Millisecond
	}
	target := net.JoinHostPort(address, strconv.Itoa(port))
	var d net.Dialer
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		conn, err := d.DialContext(dctx, "tcp", target)
		cancel()
		if err == nil {
			_ = conn.Close()
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for app on %s: %w (last error: %v): start the app or check --app-port and --app-channel-address", target, ctx.Err(), err)
		case <-t.C:
		}
	}
}
