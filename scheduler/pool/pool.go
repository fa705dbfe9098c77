// Package pool keeps the sidecars' WatchJobs streams and delivers ticks to
// them: a job's tick goes to one of the streams of its app (or, for an
// actor reminder, of an app hosting the actor type) in its namespace, in
// turn, and its result (the sidecar's SUCCESS or FAILED) comes back to the
// caller. A tick with no stream to take it waits until one connects; a tick
// whose stream goes away before answering goes to another. The concurrency
// limits the streams ask for hold actor reminder ticks back while their
// gate is full (gate.go).
package pool

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"slices"
	"sync"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
)

// Result is a sidecar's answer for one tick.
type Result = schedulerv1.WatchJobsRequestResultStatus

// Hooks are told about connections (for metrics); nil ones are skipped.
type Hooks struct {
	Connected func(delta int)
	// Undelivered: a tick found no stream to take it (it waits for one).
	Undelivered func(meta *schedulerv1.JobMetadata)
	SendError   func()
	RecvError   func()
}

// Pool is the set of connected streams.
type Pool struct {
	log   *slog.Logger
	hooks Hooks

	mu      sync.Mutex
	nextID  uint64
	byApp   map[string][]*stream // "ns||app id", streams that take jobs
	byActor map[string][]*stream // "ns||actor type"
	turn    map[string]int
	gates   map[string]*gate
	// replicas and index are the scheduler replica count and this
	// replica's place, for its share of each gate's limit.
	replicas, index uint32
	// changed is closed and replaced when a waiting tick may go on: a
	// stream was added, a gate slot freed or a gate removed.
	changed chan struct{}
}

// New returns an empty pool.
func New(log *slog.Logger, hooks Hooks) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Pool{log: log, hooks: hooks, byApp: map[string][]*stream{}, byActor: map[string][]*stream{},
		turn: map[string]int{}, gates: map[string]*gate{}, replicas: 1, changed: make(chan struct{})}
}

func (p *Pool) changedLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// Tick is one delivery.
type Tick struct {
	// Name is the job's name as its app gave it.
	Name     string
	Data     *anypb.Any
	Metadata *schedulerv1.JobMetadata
}

// WaitStream returns once a stream of meta's target is connected (at once
// when one is), or ctx's error if ctx ends first. The engine has a tick
// wait here before it takes one of its delivery workers, so that the ticks
// of an app that is not connected do not hold every worker while another
// app's wait (Dapr's scheduler stages such ticks until their app
// connects).
func (p *Pool) WaitStream(ctx context.Context, meta *schedulerv1.JobMetadata) error {
	key, byActor := routeKey(meta)
	told := false
	for {
		p.mu.Lock()
		list := p.byApp[key]
		if byActor {
			list = p.byActor[key]
		}
		n, changed := len(list), p.changed
		p.mu.Unlock()
		if n > 0 {
			return nil
		}
		if !told {
			told = true
			if p.hooks.Undelivered != nil {
				p.hooks.Undelivered(meta)
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// errGone is a stream closing before it answered.
var errGone = errors.New("stream closed before the sidecar answered")

// Deliver sends t to one of its target's streams and returns the
// sidecar's result, waiting for a stream when none is connected and for a
// slot when its concurrency gates are full. It returns an error only when
// ctx ends without an answer.
func (p *Pool) Deliver(ctx context.Context, t Tick) (Result, error) {
	key, byActor := routeKey(t.Metadata)
	told := false
	for {
		p.mu.Lock()
		var s *stream
		list := p.byApp[key]
		if byActor {
			list = p.byActor[key]
		}
		gs := p.gatesLocked(t.Metadata)
		if len(list) > 0 && p.acquireLocked(gs) {
			i := p.turn[key] % len(list)
			p.turn[key] = i + 1
			s = list[i]
		}
		changed := p.changed
		p.mu.Unlock()
		if s == nil {
			if len(list) == 0 && !told {
				told = true
				if p.hooks.Undelivered != nil {
					p.hooks.Undelivered(t.Metadata)
				}
			}
			select {
			case <-changed:
				continue
			case <-ctx.Done():
				return 0, ctx.Err()
			}
		}
		r, err := s.deliver(ctx, t)
		p.release(gs)
		if errors.Is(err, errGone) {
			continue
		}
		return r, err
	}
}

func routeKey(meta *schedulerv1.JobMetadata) (key string, byActor bool) {
	if a := meta.GetTarget().GetActor(); a != nil {
		return meta.GetNamespace() + "||" + a.GetType(), true
	}
	return meta.GetNamespace() + "||" + meta.GetAppId(), false
}

// Connected is how many streams are connected.
func (p *Pool) Connected() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	seen := map[*stream]bool{}
	for _, l := range p.byApp {
		for _, s := range l {
			seen[s] = true
		}
	}
	for _, l := range p.byActor {
		for _, s := range l {
			seen[s] = true
		}
	}
	return len(seen)
}

// Conn is a WatchJobs stream as the pool uses it.
type Conn interface {
	Send(*schedulerv1.WatchJobsResponse) error
	Recv() (*schedulerv1.WatchJobsRequest, error)
	Context() context.Context
}

// Serve adds the stream of a sidecar that sent initial, and serves it
// until it ends or ctx does.
func (p *Pool) Serve(ctx context.Context, initial *schedulerv1.WatchJobsRequestInitial, c Conn) error {
	s := &stream{conn: c, pending: map[uint64]chan Result{}, done: make(chan struct{})}
	types := initial.GetAcceptJobTypes()
	takesJobs := len(types) == 0 || slices.Contains(types, schedulerv1.JobTargetType_JOB_TARGET_TYPE_JOB)
	takesActors := len(types) == 0 || slices.Contains(types, schedulerv1.JobTargetType_JOB_TARGET_TYPE_ACTOR_REMINDER)
	ns := initial.GetNamespace()
	limits := limitsOf(initial)
	var keysApp, keysActor []string
	if takesJobs {
		keysApp = append(keysApp, ns+"||"+initial.GetAppId())
	}
	if takesActors {
		for _, t := range initial.GetActorTypes() {
			keysActor = append(keysActor, ns+"||"+t)
		}
	}
	p.mu.Lock()
	p.nextID++
	s.id = p.nextID
	for _, k := range keysApp {
		p.byApp[k] = append(p.byApp[k], s)
	}
	for _, k := range keysActor {
		p.byActor[k] = append(p.byActor[k], s)
	}
	p.addLimitsLocked(limits)
	p.changedLocked()
	p.mu.Unlock()
	if p.hooks.Connected != nil {
		p.hooks.Connected(1)
	}
	p.log.Info("sidecar connected", "namespace", ns, "app_id", initial.GetAppId(), "actor_types", initial.GetActorTypes(), "stream", s.id)

	defer func() {
		p.mu.Lock()
		for _, k := range keysApp {
			p.byApp[k] = remove(p.byApp[k], s)
		}
		for _, k := range keysActor {
			p.byActor[k] = remove(p.byActor[k], s)
		}
		p.removeLimitsLocked(limits)
		p.changedLocked()
		p.mu.Unlock()
		s.close()
		if p.hooks.Connected != nil {
			p.hooks.Connected(-1)
		}
		p.log.Info("sidecar disconnected", "namespace", ns, "app_id", initial.GetAppId(), "stream", s.id)
	}()

	recvErr := make(chan error, 1)
	go func() { recvErr <- s.recvLoop() }()
	select {
	case err := <-recvErr:
		if err == nil || errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if p.hooks.RecvError != nil {
			p.hooks.RecvError()
		}
		return err
	case <-ctx.Done():
		return status.Error(codes.Unavailable, "scheduler is shutting down")
	}
}

func remove(l []*stream, s *stream) []*stream {
	out := l[:0:0]
	for _, x := range l {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

// stream is one sidecar's WatchJobs stream.
type stream struct {
	id   uint64
	conn Conn

	sendMu sync.Mutex // grpc streams take one Send at a time

	mu      sync.Mutex
	nextID  uint64
	pending map[uint64]chan Result
	closed  bool
	done    chan struct{}
}

func (s *stream) deliver(ctx context.Context, t Tick) (Result, error) {
	ch := make(chan Result, 1)
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return 0, errGone
	}
	s.nextID++
	id := s.nextID
	s.pending[id] = ch
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.pending, id)
		s.mu.Unlock()
	}()
	s.sendMu.Lock()
	err := s.conn.Send(&schedulerv1.WatchJobsResponse{Name: t.Name, Id: id, Data: t.Data, Metadata: t.Metadata})
	s.sendMu.Unlock()
	if err != nil {
		s.close()
		return 0, errGone
	}
	select {
	case r := <-ch:
		return r, nil
	case <-s.done:
		return 0, errGone
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

func (s *stream) recvLoop() error {
	for {
		req, err := s.conn.Recv()
		if err != nil {
			return err
		}
		res := req.GetResult()
		if res == nil {
			continue // a second initial message is ignored, as by Dapr
		}
		s.mu.Lock()
		ch := s.pending[res.GetId()]
		delete(s.pending, res.GetId())
		s.mu.Unlock()
		if ch != nil {
			ch <- res.GetStatus()
		}
	}
}

func (s *stream) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.done)
	}
}
