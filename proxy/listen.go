package proxy

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"syscall"

	"github.com/tandemrun/tandem/internal/rawio"
)

// listen opens one TCP listener per host on port. flag names the
// command-line flag that sets the port, so the error can say what to change.
func listen(hosts []string, port int, flag string) ([]net.Listener, error) {
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	var out []net.Listener
	for _, h := range hosts {
		addr := net.JoinHostPort(h, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range out {
				_ = l.Close()
			}
			if errors.Is(err, syscall.EADDRINUSE) {
				holder := portHolder(port)
				return nil, fmt.Errorf("listen on %s: port %d is already in use%s: stop that process or choose another port with %s", addr, port, holder, flag)
			}
			return nil, fmt.Errorf("listen on %s: %w (set %s)", addr, err, flag)
		}
		// Accepted connections read and write without waking the
		// runtime's monitor (internal/rawio).
		out = append(out, rawio.Listen(ln))
	}
	return out, nil
}

// port returns the port a listener is bound to.
func port(ln net.Listener) int {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		return a.Port
	}
	return 0
}

// ListenConfig says where a sidecar listens. Ports may be 0 (pick a free
// one).
type ListenConfig struct {
	// Addresses are the hosts of the public HTTP and gRPC APIs; empty
	// means all interfaces.
	Addresses          []string
	HTTPPort, GRPCPort int
	// InternalAddress and InternalPort are the sidecar-to-sidecar server's.
	InternalAddress string
	InternalPort    int
	// MetricsAddress and MetricsPort serve /metrics; a negative port opens
	// no metrics listener.
	MetricsAddress string
	MetricsPort    int
	// PublicAddress and PublicPort are daprd's public health and metadata
	// server (--dapr-public-port); PublicPort 0 opens none.
	PublicAddress string
	PublicPort    int
}

// Listeners are a sidecar's open sockets. They are opened before anything
// else is built, so that name resolution can register the ports actually
// bound; the Sidecar serving them closes them when it stops.
type Listeners struct {
	HTTP, GRPC []net.Listener
	Internal   net.Listener
	// Metrics is nil when no metrics listener was asked for.
	Metrics net.Listener
	// Public is nil without --dapr-public-port.
	Public net.Listener
}

// Listen opens every listener of c, or none.
func Listen(c ListenConfig) (*Listeners, error) {
	l := &Listeners{}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	var err error
	if l.HTTP, err = listen(c.Addresses, c.HTTPPort, "--dapr-http-port"); err != nil {
		return nil, err
	}
	if l.GRPC, err = listen(c.Addresses, c.GRPCPort, "--dapr-grpc-port"); err != nil {
		return nil, err
	}
	if l.Internal, err = listenOne(c.InternalAddress, c.InternalPort, "--dapr-internal-grpc-port"); err != nil {
		return nil, err
	}
	if c.MetricsPort >= 0 {
		if l.Metrics, err = listenOne(c.MetricsAddress, c.MetricsPort, "--metrics-port"); err != nil {
			return nil, err
		}
	}
	if c.PublicPort > 0 {
		if l.Public, err = listenOne(c.PublicAddress, c.PublicPort, "--dapr-public-port"); err != nil {
			return nil, err
		}
	}
	ok = true
	return l, nil
}

func listenOne(host string, port int, flag string) (net.Listener, error) {
	var hosts []string
	if host != "" {
		hosts = []string{host}
	}
	lns, err := listen(hosts, port, flag)
	if err != nil {
		return nil, err
	}
	return lns[0], nil
}

// HTTPPort and InternalPort are the ports bound, for name resolution.
func (l *Listeners) HTTPPort() int     { return port(l.HTTP[0]) }
func (l *Listeners) InternalPort() int { return port(l.Internal) }

// Close closes every listener; serving ones stop accepting.
func (l *Listeners) Close() {
	for _, ln := range append(slices.Clone(l.HTTP), l.GRPC...) {
		_ = ln.Close()
	}
	for _, ln := range []net.Listener{l.Internal, l.Metrics, l.Public} {
		if ln != nil {
			_ = ln.Close()
		}
	}
}
