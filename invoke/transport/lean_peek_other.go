//go:build !(linux || darwin || freebsd)

package transport

import "net"

// peerClosed cannot look at the socket here: a connection closed while
// idle is found when a call on it fails (ErrStaleConn).
func peerClosed(net.Conn) bool { return false }
