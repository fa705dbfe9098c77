// Command relay is the invocation benchmark's floor: the smallest thing
// that can sit where a sidecar sits. In tcp mode it copies bytes between
// each client connection and a connection to -to (no parsing, no TLS; Go
// splices them in the kernel); in http mode it is net/http's
// ReverseProxy with a keep-alive pool to -to. Two relays in series show
// what two extra hops cost on this machine before a sidecar does any work.
package main

import (
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	to := flag.String("to", "", "host:port to relay to")
	mode := flag.String("mode", "tcp", "tcp or http")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("listen", "error", err)
		os.Exit(1)
	}
	// The harness reads the port from the first line of stdout.
	os.Stdout.WriteString(ln.Addr().String() + "\n")
	switch *mode {
	case "tcp":
		for {
			c, err := ln.Accept()
			if err != nil {
				log.Error("accept", "error", err)
				os.Exit(1)
			}
			go relay(c, *to, log)
		}
	case "http":
		target := &url.URL{Scheme: "http", Host: *to}
		rp := httputil.NewSingleHostReverseProxy(target)
		rp.Transport = &http.Transport{MaxIdleConnsPerHost: 1024, DisableCompression: true}
		err = http.Serve(ln, rp)
		log.Error("serve", "error", err)
		os.Exit(1)
	default:
		log.Error("unknown -mode: use tcp or http", "mode", *mode)
		os.Exit(2)
	}
}

func relay(c net.Conn, to string, log *slog.Logger) {
	defer c.Close()
	up, err := net.Dial("tcp", to)
	if err != nil {
		log.Error("dial", "to", to, "error", err)
		return
	}
	defer up.Close()
	done := make(chan struct{})
	go func() {
		_, _ = io.Copy(up, c)
		_ = up.(*net.TCPConn).CloseWrite()
		close(done)
	}()
	_, _ = io.Copy(c, up)
	<-done
}
