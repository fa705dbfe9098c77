package main

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/proxy"
)

// profilingTask opens the listeners of Go's pprof handlers under
// /debug/pprof on port, on the Dapr API's listen addresses (all interfaces
// when none are given), as daprd does with --enable-profiling: `go tool
// pprof http://localhost:7777/debug/pprof/profile`. It returns the task
// that serves them until its context ends, and the addresses.
func profilingTask(hosts []string, port int, log *slog.Logger) (task.Task, []string, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	if len(hosts) == 0 {
		hosts = []string{""}
	}
	var lns []net.Listener
	for _, h := range hosts {
		ln, err := net.Listen("tcp", net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(port)))
		if err != nil {
			for _, l := range lns {
				_ = l.Close()
			}
			return task.Task{}, nil, errors.New("profiling server: " + err.Error() + "; pick a free --profile-port or drop --enable-profiling")
		}
		lns = append(lns, ln)
	}
	addrs := make([]string, len(lns))
	for i, ln := range lns {
		addrs[i] = ln.Addr().String()
	}
	log.Warn("profiling server (pprof) listening: anyone who can reach it can read the sidecar's memory profile; turn it off with --enable-profiling=false in production",
		"addresses", addrs, "path", "/debug/pprof/")
	t := proxy.HTTPTask("profiling server", srv, lns, 0)
	t.Critical = false // the sidecar goes on without it
	return t, addrs, nil
}
