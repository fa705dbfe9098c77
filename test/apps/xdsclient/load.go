package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/anypb"
)

// loadResult is what /load answers: the calls made and their latency.
type loadResult struct {
	Requests   int     `json:"requests"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error,omitempty"`
	Seconds    float64 `json:"seconds"`
	P50        int64   `json:"p50_ns"`
	P90        int64   `json:"p90_ns"`
	P99        int64   `json:"p99_ns"`
	Max        int64   `json:"max_ns"`
}

// loadParams are /load's query parameters.
type loadParams struct {
	target   string        // "xds:///<app>" or host:port of a plain gRPC server
	appID    string        // dapr-app-id metadata to send ("" for none)
	qps      float64       // <= 0: as fast as the workers go
	duration time.Duration // how long to call
	workers  int           // concurrent callers on one connection
	size     int           // payload bytes
}

func parseLoad(r *http.Request) (loadParams, error) {
	q := r.URL.Query()
	p := loadParams{target: q.Get("target"), appID: q.Get("app_id"), workers: 16, size: 1024, duration: 10 * time.Second}
	if p.target == "" {
		return p, errors.New("target is required: xds:///<app-id> or host:port")
	}
	var err error
	if v := q.Get("qps"); v != "" {
		if p.qps, err = strconv.ParseFloat(v, 64); err != nil {
			return p, fmt.Errorf("qps: %w", err)
		}
	}
	if v := q.Get("duration"); v != "" {
		if p.duration, err = time.ParseDuration(v); err != nil || p.duration <= 0 {
			return p, fmt.Errorf("duration %q: want a positive Go duration", v)
		}
	}
	for name, dst := range map[string]*int{"workers": &p.workers, "size": &p.size} {
		if v := q.Get(name); v != "" {
			if *dst, err = strconv.Atoi(v); err != nil || *dst < 0 || (name == "workers" && *dst == 0) {
				return p, fmt.Errorf("%s %q: want a positive number", name, v)
			}
		}
	}
	return p, nil
}

// loadConns keeps one connection per target, so that a warm-up and the
// measured run share it.
type loadConns struct {
	mu    sync.Mutex
	xds   credentials.TransportCredentials
	conns map[string]runtimev1.AppCallbackClient
}

func (c *loadConns) get(target string) (runtimev1.AppCallbackClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cb, ok := c.conns[target]; ok {
		return cb, nil
	}
	creds := insecure.NewCredentials()
	if strings.HasPrefix(target, "xds:///") {
		creds = c.xds
	}
	cc, err := grpc.NewClient(target, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, err
	}
	c.conns[target] = runtimev1.NewAppCallbackClient(cc)
	return c.conns[target], nil
}

// serveLoad answers GET /load?target=..&qps=..&duration=..&workers=..&size=..[&app_id=..]
// with a loadResult once the run ends.
func (c *loadConns) serveLoad(w http.ResponseWriter, r *http.Request) {
	p, err := parseLoad(r)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	cb, err := c.get(p.target)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	_ = json.NewEncoder(w).Encode(runLoad(r.Context(), cb, p))
}

// runLoad calls OnInvoke from p.workers goroutines for p.duration. At a
// fixed rate each worker keeps its own schedule, the workers' offset by a
// fraction of the period so that the calls arrive evenly; a worker that
// falls behind calls at once rather than in a burst to catch up.
func runLoad(ctx context.Context, cb runtimev1.AppCallbackClient, p loadParams) loadResult {
	data := make([]byte, p.size)
	for i := range data {
		data[i] = "abcdefghijklmnopqrstuvwxyz0123456789"[i%36]
	}
	req := &commonv1.InvokeRequest{Method: "echo", Data: &anypb.Any{Value: data}, ContentType: "application/octet-stream"}
	if p.appID != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "dapr-app-id", p.appID)
	}
	var period time.Duration
	if p.qps > 0 {
		period = time.Duration(float64(p.workers) / p.qps * float64(time.Second))
	}
	var (
		mu  sync.Mutex
		res loadResult
		lat []time.Duration
		wg  sync.WaitGroup
	)
	start := time.Now()
	end := start.Add(p.duration)
	for w := range p.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 4096)
			errs, first := 0, ""
			next := start.Add(period * time.Duration(w) / time.Duration(p.workers))
			for {
				if period > 0 {
					if d := time.Until(next); d > 0 {
						time.Sleep(d)
					}
					if now := time.Now(); now.Sub(next) > period {
						next = now
					}
					next = next.Add(period)
				}
				t0 := time.Now()
				if !t0.Before(end) || ctx.Err() != nil {
					break
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				_, err := cb.OnInvoke(cctx, req)
				cancel()
				local = append(local, time.Since(t0))
				if err != nil {
					errs++
					if first == "" {
						first = err.Error()
					}
				}
			}
			mu.Lock()
			lat = append(lat, local...)
			res.Errors += errs
			if res.FirstError == "" {
				res.FirstError = first
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Requests = len(lat)
	if len(lat) > 0 {
		slices.Sort(lat)
		pct := func(q float64) int64 { return int64(lat[int(q*float64(len(lat)-1))]) }
		res.P50, res.P90, res.P99, res.Max = pct(0.50), pct(0.90), pct(0.99), int64(lat[len(lat)-1])
	}
	return res
}
