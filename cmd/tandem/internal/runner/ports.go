package runner

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"
)

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// choosePort returns p if it is free, a free port if p is 0, or an error
// naming the process holding p and the flag to change.
func choosePort(p int, flag string) (int, error) {
	if p == 0 {
		return freePort()
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return 0, fmt.Errorf("port %d is already in use%s: stop that process, or choose another port with %s (or leave it out for a free one)", p, PortHolder(p), flag)
		}
		return 0, fmt.Errorf("port %d (%s): %w", p, flag, err)
	}
	ln.Close()
	return p, nil
}

// quickClient is for readiness probes on loopback.
var quickClient = &http.Client{Timeout: time.Second}
