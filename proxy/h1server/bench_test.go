package h1server

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"syscall"
	"testing"
	"time"
)

// BenchmarkServer: the same handler behind net/http's server and this one,
// keep-alive clients posting 1 KiB and reading it back; cpu-ns/op is the
// whole process's CPU (clients and server) per request.
func BenchmarkServer(b *testing.B) {
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/octet-stream")
		_, _ = w.Write(body)
	})
	req := []byte("POST /v1.0/invoke/app/method/echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\nContent-Length: 1024\r\n\r\n")
	req = append(req, make([]byte, 1024)...)
	for _, name := range []string{"net-http", "h1server"} {
		b.Run(name, func(b *testing.B) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				b.Fatal(err)
			}
			if name == "net-http" {
				s := &http.Server{Handler: echo, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = s.Serve(ln) }()
				defer s.Close()
			} else {
				s := &Server{Handler: echo, ReadHeaderTimeout: 10 * time.Second}
				go func() { _ = s.Serve(ln) }()
				defer s.Close()
			}
			b.SetParallelism(8)
			b.ReportAllocs()
			start := cpuTime()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				c, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					b.Error(err)
					return
				}
				defer c.Close()
				br := bufio.NewReader(c)
				for pb.Next() {
					if _, err := c.Write(req); err != nil {
						b.Error(err)
						return
					}
					resp, err := http.ReadResponse(br, nil)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
