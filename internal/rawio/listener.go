package rawio

import "net"

// Listener wraps each connection a listener accepts (Wrap).
type Listener struct{ net.Listener }

// Listen returns l with its accepted connections wrapped.
func Listen(l net.Listener) net.Listener { return Listener{l} }

// Accept waits for and returns the next connection, wrapped.
func (l Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return Wrap(c), nil
}
