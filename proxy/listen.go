package proxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"syscall"
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
		out = append(out, ln)
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
