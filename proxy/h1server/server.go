// Package h1server serves HTTP/1.1 connections to an http.Handler with the
// answers net/http's server gives, at less cost per request.
//
// Requests are read by net/http itself (http.ReadRequest) and answered by
// the same rules as net/http's server: the Date header, Content-Length for
// an answer that is whole when the handler returns, chunked encoding
// otherwise, content sniffing, HEAD, 1xx and 204/304 answers, trailers,
// Expect: 100-continue, HTTP/1.0 keep-alive, the request body drained (up
// to 256 KiB) before the answer, header size limits (431), Hijack (the h2c
// upgrade), panics (http.ErrAbortHandler cuts the answer short).
//
// What it leaves out is the per-request watch net/http keeps on the
// connection: after each request's body it starts a goroutine that reads
// from the connection, to cancel the request's context when the client
// goes away, and stops it after the answer (a read, two deadline changes
// and a goroutine hand-off per request). Here that watch starts only when
// a handler is still running after WatchAfter, so a slow call is still
// cancelled when its client leaves, and a quick one pays nothing. A header
// already received whole is parsed without a read deadline.
package h1server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WatchAfter is how long a handler runs before its connection is watched
// for the client going away.
const WatchAfter = 10 * time.Millisecond

// maxPostHandlerReadBytes is how much of a request body the server reads
// past what the handler read, to keep the connection (net/http's figure).
const maxPostHandlerReadBytes = 256 << 10

// rstAvoidanceDelay is how long a connection closed with request data
// unread stays half-closed, so the client reads the answer before a reset.
const rstAvoidanceDelay = 500 * time.Millisecond

// Server serves HTTP/1.1 on listeners. Its zero value serves
// http.DefaultServeMux with no timeouts.
type Server struct {
	// Handler answers requests; nil: http.DefaultServeMux.
	Handler http.Handler
	// ReadHeaderTimeout bounds the time to read a request's header; zero:
	// no bound.
	ReadHeaderTimeout time.Duration
	// MaxHeaderBytes bounds a request's line and header; zero or less:
	// http.DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// Log receives handler panics; nil: slog.Default().
	Log *slog.Logger

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*conn]struct{}
	shutting  atomic.Bool
	closed    bool
}

// Serve accepts connections on ln and serves each on its own goroutine
// until Shutdown or Close; it then returns http.ErrServerClosed.
func (s *Server) Serve(ln net.Listener) error {
	if !s.track(ln) {
		_ = ln.Close()
		return http.ErrServerClosed
	}
	defer s.untrack(ln)
	var backoff time.Duration
	for {
		rw, err := ln.Accept()
		if err != nil {
			if s.shutting.Load() {
				return http.ErrServerClosed
			}
			if temporary(err) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		c := s.newConn(rw)
		if c == nil {
			_ = rw.Close()
			continue
		}
		go c.serve()
	}
}

// temporary reports whether an Accept error passes (as net/http's server
// treats them): out of file descriptors or buffers, or a timeout. The
// server waits and accepts again rather than stopping.
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) || errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

func (s *Server) track(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutting.Load() {
		return false
	}
	if s.listeners == nil {
		s.listeners = map[net.Listener]struct{}{}
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) untrack(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// Shutdown stops accepting connections, closes idle ones, and waits for the
// others to finish their request, until ctx ends (its error is returned).
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutting.Store(true)
	s.closeListeners()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.closeIdle() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// Close closes the listeners and every connection at once, requests in
// flight too (not those taken over with Hijack).
func (s *Server) Close() error {
	s.shutting.Store(true)
	s.closeListeners()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	for c := range s.conns {
		_ = c.rwc.Close()
		delete(s.conns, c)
	}
	return nil
}

func (s *Server) closeListeners() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ln := range s.listeners {
		_ = ln.Close()
		delete(s.listeners, ln)
	}
}

// closeIdle closes connections waiting for a request (new ones after 5 s,
// as net/http) and reports whether none is left.
func (s *Server) closeIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		st := c.state.Load()
		if st == stateIdle || st == stateNew && time.Since(c.since) > 5*time.Second {
			_ = c.rwc.Close()
			delete(s.conns, c)
		}
	}
	return len(s.conns) == 0
}

func (s *Server) newConn(rwc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	c := &conn{srv: s, rwc: rwc, since: time.Now()}
	if s.conns == nil {
		s.conns = map[*conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	return c
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *Server) handler() http.Handler {
	if s.Handler != nil {
		return s.Handler
	}
	return http.DefaultServeMux
}

func (s *Server) headerLimit() int64 {
	n := s.MaxHeaderBytes
	if n <= 0 {
		n = http.DefaultMaxHeaderBytes
	}
	return int64(n) + 4096 // bufio's slack, as net/http
}

func (s *Server) logPanic(remote string, v any) {
	log := s.Log
	if log == nil {
		log = slog.Default()
	}
	buf := make([]byte, 64<<10)
	buf = buf[:runtime.Stack(buf, false)]
	log.Error("http: panic serving "+remote, "panic", fmt.Sprint(v), "stack", string(buf))
}

// Connection states, for Shutdown.
const (
	stateNew int32 = iota
	stateActive
	stateIdle
	stateHijacked
)

// conn is one client connection.
type conn struct {
	srv    *Server
	rwc    net.Conn
	since  time.Time
	state  atomic.Int32
	remote string
	tls    *tls.ConnectionState

	ctx    context.Context
	cancel context.CancelFunc

	cr connReader
	br *bufio.Reader
	cw connWriter
	bw *bufio.Writer

	// watch starts the watch for the client going away while a handler
	// runs (WatchAfter); mu guards running.
	watch   *time.Timer
	mu      sync.Mutex
	running *response

	// Reused by each request's answer.
	snap    http.Header
	keys    []string
	pending []byte
}
