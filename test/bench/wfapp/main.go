// Command wfapp is the workflow benchmark's app. With --dapr-grpc it runs
// the official Go SDK workflow worker (github.com/dapr/go-sdk/workflow)
// against that sidecar, with two workflows:
//
//	Chain   five Add1 activities in a row: n -> n+5
//	FanOut  n Square activities at once, summed: sum of i*i for i < n
//
// With --port it also serves the same activity bodies as plain HTTP
// handlers (POST /add1 and POST /square: a JSON number in, a JSON number
// out). The benchmark calls those straight, without a sidecar, as the
// floor its workflow figures are compared with: the same work, decoded and
// encoded the same way, minus the workflow engine.
//
// Activity runs are not recorded anywhere (test/apps/workflowapp appends
// each run to a file, which costs a write and an fsync per activity).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"
	"github.com/microsoft/durabletask-go/task"
)

// The activity bodies, shared by the workflow activities and the HTTP
// handlers.
func add1(n int) int   { return n + 1 }
func square(n int) int { return n * n }

// Add1 is the chain's activity.
func Add1(ctx workflow.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return add1(n), nil
}

// Square is the fan-out's activity.
func Square(ctx workflow.ActivityContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	return square(n), nil
}

// Chain calls Add1 five times in a row.
func Chain(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	for range 5 {
		if err := ctx.CallActivity(Add1, workflow.ActivityInput(n)).Await(&n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

// FanOut starts n Square activities at once and sums their results.
func FanOut(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	tasks := make([]task.Task, n)
	for i := range n {
		tasks[i] = ctx.CallActivity(Square, workflow.ActivityInput(i))
	}
	sum := 0
	for _, t := range tasks {
		var v int
		if err := t.Await(&v); err != nil {
			return nil, err
		}
		sum += v
	}
	return sum, nil
}

// plain serves an activity body over HTTP: a JSON number in, a JSON number
// out.
func plain(f func(int) int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var n int
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			http.Error(w, "want a JSON number: "+err.Error(), http.StatusBadRequest)
			return
		}
		b, _ := json.Marshal(f(n))
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /add1", plain(add1))
	mux.HandleFunc("POST /square", plain(square))
	return mux
}

func main() {
	addr := flag.String("dapr-grpc", "", "the sidecar's gRPC address (host:port); empty runs no workflow worker")
	port := flag.Int("port", 0, "port for the plain HTTP activity handlers on 127.0.0.1; 0 serves none")
	flag.Parse()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if *addr == "" && *port == 0 {
		log.Error("nothing to do: give --dapr-grpc, --port or both")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if *port != 0 {
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
		if err != nil {
			log.Error("listen failed; pick another --port", "error", err)
			os.Exit(1)
		}
		srv := &http.Server{Handler: handler(), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("serve", "error", err)
				os.Exit(1)
			}
		}()
		defer srv.Close()
		log.Info("plain activity handlers listening", "addr", ln.Addr().String())
	}
	if *addr != "" {
		if err := runWorker(*addr); err != nil {
			log.Error("workflow worker", "error", err)
			os.Exit(1)
		}
		log.Info("workflow worker started", "sidecar", *addr)
	}
	<-ctx.Done()
}

// runWorker connects the SDK's workflow worker to the sidecar at addr and
// starts it.
func runWorker(addr string) error {
	client, err := dapr.NewClientWithAddress(addr)
	if err != nil {
		return fmt.Errorf("connect to the sidecar at %s (is it up?): %w", addr, err)
	}
	w, err := workflow.NewWorker(workflow.WorkerWithDaprClient(client))
	if err != nil {
		return err
	}
	for _, wf := range []workflow.Workflow{Chain, FanOut} {
		if err := w.RegisterWorkflow(wf); err != nil {
			return err
		}
	}
	for _, a := range []workflow.Activity{Add1, Square} {
		if err := w.RegisterActivity(a); err != nil {
			return err
		}
	}
	return w.Start()
}
