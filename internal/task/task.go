// Package task runs a binary's long-running work: every server, watcher and
// background loop is a named Task, started by the binary's composition root
// in one call to Run, which waits for all of them.
//
// Tasks are grouped in stages that stop in order. Shutdown begins when the
// context ends or a critical task returns; then the first stage is
// cancelled and waited for, then the second, and so on. A sidecar puts what
// takes work in (servers, subscriptions) in the first stages and what that
// work uses (identity, name resolution, components) in the later ones, so
// in-flight requests drain before the parts they need are closed.
//
// Modelled on SPIRE's RunTasks (pkg/common/util/task.go); errgroup does not
// fit because a non-critical failure must not cancel its siblings and
// stages are cancelled one at a time.
//
// Only the cmd packages and the packages whose Run composes its own parts
// (proxy) import it.
package task

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Task is one named piece of long-running work.
type Task struct {
	// Name identifies the task in logs and errors ("http server").
	Name string
	// Run does the work until ctx ends. It should return nil when it
	// stops because ctx ended.
	Run func(ctx context.Context) error
	// Critical marks work the process cannot go on without: when it
	// returns before shutdown began, with or without an error, the group
	// shuts down, and its error is what Run returns. A task that is not
	// critical is logged by name when it fails and the rest keep running.
	Critical bool
}

// Stage is a set of tasks that are cancelled together.
type Stage struct {
	// Name is used in logs ("intake", "components").
	Name  string
	Tasks []Task
	// Grace bounds how long the stage may take to stop once cancelled;
	// the tasks still running then are logged by name and shutdown moves
	// on to the next stage. Zero waits as long as it takes.
	Grace time.Duration
}

// Cleanup returns a task that does nothing until its stage is cancelled and
// then runs stop: the place in the shutdown order of a part that only needs
// closing (components, name resolution registration).
func Cleanup(name string, stop func() error) Task {
	return Task{Name: name, Run: func(ctx context.Context) error {
		<-ctx.Done()
		return stop()
	}}
}

// Run starts every task of every stage and returns once they have all
// stopped (or overrun their stage's grace). Shutdown begins when ctx ends
// or a critical task returns; the stages are then cancelled one at a time,
// in the order given, each waited for before the next is cancelled. Each
// task's context keeps ctx's values but is cancelled only with its stage.
//
// Run returns the error of the critical task whose failure started the
// shutdown, as "<name>: <error>", or nil. Errors returned while stopping are
// logged, not returned: they do not change how the process exits.
func Run(ctx context.Context, log *slog.Logger, stages ...Stage) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &runner{log: log, trigger: make(chan struct{})}
	base := context.WithoutCancel(ctx)
	running := make([]*stage, len(stages))
	for i, st := range stages {
		sctx, cancel := context.WithCancel(base)
		s := &stage{Stage: st, cancel: cancel, left: map[string]int{}}
		running[i] = s
		for _, t := range st.Tasks {
			s.start(sctx, r, t)
		}
	}
	select {
	case <-ctx.Done():
	case <-r.trigger:
	}
	r.mu.Lock()
	r.stopping = true
	r.mu.Unlock()
	for _, s := range running {
		s.stop(log)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

type runner struct {
	log     *slog.Logger
	trigger chan struct{}

	mu       sync.Mutex
	stopping bool  // shutdown began
	err      error // the critical failure that began it
}

// done records the end of task t.
func (r *runner) done(t Task, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case r.stopping:
		if err != nil && !errors.Is(err, context.Canceled) {
			r.log.Warn("task stopped with an error", "task", t.Name, "error", err)
		}
	case t.Critical:
		if err != nil {
			r.err = fmt.Errorf("%s: %w", t.Name, err)
			r.log.Error("critical task failed; shutting down", "task", t.Name, "error", err)
		} else {
			r.log.Info("task ended; shutting down", "task", t.Name)
		}
		r.stopping = true
		close(r.trigger)
	case err != nil:
		r.log.Error("task failed; the rest keep running", "task", t.Name, "error", err)
	default:
		r.log.Debug("task done", "task", t.Name)
	}
}

type stage struct {
	Stage
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu   sync.Mutex
	left map[string]int // tasks still running, by name
}

func (s *stage) start(ctx context.Context, r *runner, t Task) {
	s.mu.Lock()
	s.left[t.Name]++
	s.mu.Unlock()
	s.wg.Go(func() {
		err := t.Run(ctx)
		s.mu.Lock()
		if s.left[t.Name]--; s.left[t.Name] == 0 {
			delete(s.left, t.Name)
		}
		s.mu.Unlock()
		r.done(t, err)
	})
}

// stop cancels the stage and waits for its tasks, up to Grace.
func (s *stage) stop(log *slog.Logger) {
	s.cancel()
	if len(s.Tasks) == 0 {
		return
	}
	log.Debug("stopping", "stage", s.Name)
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	if s.Grace <= 0 {
		<-done
		return
	}
	t := time.NewTimer(s.Grace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.mu.Lock()
		names := make([]string, 0, len(s.left))
		for n := range s.left {
			names = append(names, n)
		}
		s.mu.Unlock()
		slices.Sort(names)
		log.Warn("tasks still running after the grace period; shutdown goes on without them",
			"stage", s.Name, "grace", s.Grace.String(), "tasks", names)
	}
}

// Early starts t at once, before the group it belongs to runs, and returns
// the task to put in the group in its place: that one waits for t, and
// when its own context ends, stops t and waits for it. It is for work that
// must already run while the root is still building (the trust anchors
// watcher while the first certificate is awaited). The returned task must
// be run, or t is never stopped.
func Early(ctx context.Context, t Task) Task {
	ectx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- t.Run(ectx) }()
	return Task{Name: t.Name, Critical: t.Critical, Run: func(ctx context.Context) error {
		defer cancel()
		select {
		case err := <-done:
			return err
		case <-ctx.Done():
			cancel()
			return <-done
		}
	}}
}

// Plan collects a binary's tasks, stage by stage, while its root builds
// the parts, so each part's task is added where the part is built:
//
//	var plan task.Plan
//	serve, closing := plan.Stage("serve", 0), plan.Stage("close", 0)
//	defer plan.Abort(ctx, log) // a failed start stops what was built
//	...
//	closing.Add(task.Cleanup("components", comps.Close))
//	serve.Add(task.Task{Name: "sidecar", Critical: true, Run: s.Run})
//	return plan.Run(ctx, log)
type Plan struct {
	stages  []*Stage
	started bool
}

// Stage adds a stage after the ones added so far and returns it.
func (p *Plan) Stage(name string, grace time.Duration) *Stage {
	s := &Stage{Name: name, Grace: grace}
	p.stages = append(p.stages, s)
	return s
}

// Add adds tasks to the stage.
func (s *Stage) Add(t ...Task) { s.Tasks = append(s.Tasks, t...) }

// Run runs the plan's tasks (see Run).
func (p *Plan) Run(ctx context.Context, log *slog.Logger) error {
	p.started = true
	stages := make([]Stage, len(p.stages))
	for i, s := range p.stages {
		stages[i] = *s
	}
	return Run(ctx, log, stages...)
}

// Abort, unless Run was called, starts and at once stops the tasks added
// so far, in stage order: the cleanups close what was built and the tasks
// started early are stopped.
func (p *Plan) Abort(ctx context.Context, log *slog.Logger) {
	if p.started {
		return
	}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	_ = p.Run(stopped, log)
}
