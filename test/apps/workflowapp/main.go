// Command workflowapp is a workflow app written with the official Go SDK
// workflow runtime (github.com/dapr/go-sdk/workflow). It connects its
// worker to the sidecar's gRPC port (--dapr-grpc) and registers:
//
//	Chain      five Add1 activities in a row: n -> n+5
//	FanOut     n Square activities at once, summed: sum of i*i for i < n
//	Timer      a durable timer of the input's seconds, then "done"
//	WaitEvent  waits for event "approve" up to the input's seconds: its
//	           data, or "timeout"
//	Parent     Chain as a child workflow, doubled: (n+5)*2
//	Counter    continues as new with n+1 until n is 5, then returns n
//	Long       waits for event "go" with no timeout and returns its data
//	Flaky      an activity that fails twice per instance, retried by the
//	           workflow with a timer between attempts: the attempt count
//	Slow       three SlowStep activities (--slow-step each, 300 ms by
//	           default): "input:3"
//	Sleepy     one Nap activity that sleeps the input's seconds: "rested"
//
// Every activity run is appended to --runs as "{activity} {instance}
// {step}", so that a test can count runs across crashes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	dapr "github.com/dapr/go-sdk/client"
	"github.com/dapr/go-sdk/workflow"
	"github.com/microsoft/durabletask-go/task"
)

var (
	runsMu   sync.Mutex
	runsFile *os.File
	flakyMu  sync.Mutex
	flaky    = map[string]int{}
	// slowFor is how long a SlowStep takes (--slow-step).
	slowFor = 300 * time.Millisecond
)

func record(activity, instance string, step int) {
	runsMu.Lock()
	defer runsMu.Unlock()
	if runsFile != nil {
		_, _ = fmt.Fprintf(runsFile, "%s %s %d\n", activity, instance, step)
		_ = runsFile.Sync()
	}
}

type stepInput struct {
	Instance string `json:"instance"`
	Step     int    `json:"step"`
	Value    int    `json:"value"`
}

func add1(ctx workflow.ActivityContext) (any, error) {
	var in stepInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	record("Add1", in.Instance, in.Step)
	return in.Value + 1, nil
}

func square(ctx workflow.ActivityContext) (any, error) {
	var in stepInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	record("Square", in.Instance, in.Step)
	return in.Value * in.Value, nil
}

func flakyAct(ctx workflow.ActivityContext) (any, error) {
	var in stepInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	record("FlakyAct", in.Instance, in.Step)
	flakyMu.Lock()
	flaky[in.Instance]++
	n := flaky[in.Instance]
	flakyMu.Unlock()
	if n <= 2 {
		return nil, fmt.Errorf("attempt %d fails on purpose", n)
	}
	return n, nil
}

func slowStep(ctx workflow.ActivityContext) (any, error) {
	var in stepInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	record("SlowStep", in.Instance, in.Step)
	time.Sleep(slowFor)
	return in.Value + 1, nil
}

func Chain(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	for i := range 5 {
		if err := ctx.CallActivity(add1, workflow.ActivityInput(stepInput{Instance: ctx.InstanceID(), Step: i, Value: n})).Await(&n); err != nil {
			return nil, err
		}
	}
	return n, nil
}

func FanOut(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	tasks := make([]task.Task, n)
	for i := range n {
		tasks[i] = ctx.CallActivity(square, workflow.ActivityInput(stepInput{Instance: ctx.InstanceID(), Step: i, Value: i}))
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

func Timer(ctx *workflow.WorkflowContext) (any, error) {
	var secs int
	if err := ctx.GetInput(&secs); err != nil {
		return nil, err
	}
	if err := ctx.CreateTimer(time.Duration(secs) * time.Second).Await(nil); err != nil {
		return nil, err
	}
	return "done", nil
}

func WaitEvent(ctx *workflow.WorkflowContext) (any, error) {
	var secs int
	if err := ctx.GetInput(&secs); err != nil {
		return nil, err
	}
	var data string
	err := ctx.WaitForExternalEvent("approve", time.Duration(secs)*time.Second).Await(&data)
	if errors.Is(err, task.ErrTaskCanceled) {
		return "timeout", nil
	}
	if err != nil {
		return nil, err
	}
	return data, nil
}

func Parent(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	var out int
	if err := ctx.CallChildWorkflow(Chain, workflow.ChildWorkflowInput(n), workflow.ChildWorkflowInstanceID(ctx.InstanceID()+"-child")).Await(&out); err != nil {
		return nil, err
	}
	return out * 2, nil
}

func Counter(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	if n < 5 {
		ctx.ContinueAsNew(n+1, false)
		return nil, nil
	}
	return n, nil
}

func Long(ctx *workflow.WorkflowContext) (any, error) {
	var data string
	if err := ctx.WaitForExternalEvent("go", -1).Await(&data); err != nil {
		return nil, err
	}
	return data, nil
}

func Flaky(ctx *workflow.WorkflowContext) (any, error) {
	var attempts int
	var err error
	for attempt := range 5 {
		err = ctx.CallActivity(flakyAct, workflow.ActivityInput(stepInput{Instance: ctx.InstanceID(), Step: attempt})).Await(&attempts)
		if err == nil {
			return attempts, nil
		}
		if terr := ctx.CreateTimer(100 * time.Millisecond).Await(nil); terr != nil {
			return nil, terr
		}
	}
	return nil, err
}

func nap(ctx workflow.ActivityContext) (any, error) {
	var in stepInput
	if err := ctx.GetInput(&in); err != nil {
		return nil, err
	}
	record("Nap", in.Instance, in.Step)
	time.Sleep(time.Duration(in.Value) * time.Second)
	return "rested", nil
}

func Sleepy(ctx *workflow.WorkflowContext) (any, error) {
	var secs int
	if err := ctx.GetInput(&secs); err != nil {
		return nil, err
	}
	var out string
	if err := ctx.CallActivity(nap, workflow.ActivityInput(stepInput{Instance: ctx.InstanceID(), Value: secs})).Await(&out); err != nil {
		return nil, err
	}
	return out, nil
}

func Slow(ctx *workflow.WorkflowContext) (any, error) {
	var n int
	if err := ctx.GetInput(&n); err != nil {
		return nil, err
	}
	for i := range 3 {
		if err := ctx.CallActivity(slowStep, workflow.ActivityInput(stepInput{Instance: ctx.InstanceID(), Step: i, Value: n})).Await(&n); err != nil {
			return nil, err
		}
	}
	return fmt.Sprintf("%d:3", n-3), nil
}

func main() {
	addr := flag.String("dapr-grpc", "", "the sidecar's gRPC address (host:port)")
	runs := flag.String("runs", "", "file to append activity runs to")
	flag.DurationVar(&slowFor, "slow-step", slowFor, "how long a SlowStep activity takes")
	flag.Parse()
	if *runs != "" {
		f, err := os.OpenFile(*runs, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
		if err != nil {
			log.Fatal(err)
		}
		runsFile = f
	}
	client, err := dapr.NewClientWithAddress(*addr)
	if err != nil {
		log.Fatalf("connect to the sidecar: %v", err)
	}
	w, err := workflow.NewWorker(workflow.WorkerWithDaprClient(client))
	if err != nil {
		log.Fatal(err)
	}
	for _, wf := range []workflow.Workflow{Chain, FanOut, Timer, WaitEvent, Parent, Counter, Long, Flaky, Slow, Sleepy} {
		if err := w.RegisterWorkflow(wf); err != nil {
			log.Fatal(err)
		}
	}
	for _, a := range []workflow.Activity{add1, square, flakyAct, slowStep, nap} {
		if err := w.RegisterActivity(a); err != nil {
			log.Fatal(err)
		}
	}
	if err := w.Start(); err != nil {
		log.Fatalf("start the workflow worker: %v", err)
	}
	fmt.Println("workflow worker started")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	_ = w.Shutdown()
}
