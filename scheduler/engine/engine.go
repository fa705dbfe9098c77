// Package engine triggers the jobs kept in etcd. Each replica keeps a
// leadership key on its own lease (dapr/leadership/<id>); the live
// replicas, sorted by ID, share the jobs by the job's UID modulo their
// number, and each replica times the ticks of its own jobs.
//
// A tick is delivered at most once by construction and at least once
// across failures: before delivering tick T the owner claims it with a
// compare-and-swap on the job's counter (Inflight=T, Owner=its ID), so two
// replicas that both believe they own a job while the replica set changes
// cannot both deliver it; after the sidecar's answer it records the tick
// done (or its failure policy's retry) with a second compare-and-swap. A
// tick claimed by a replica that is gone (its lease expired) is delivered
// again by the job's new owner; one claimed by a live replica is left to
// it. A replica that restarts with its ID finds its own claims and delivers
// them again. On a graceful stop a replica finishes the deliveries under
// way (for a while) before giving up its lease.
//
// When a replica joins (or comes back on a new lease) each replica gives up
// waiting for the answers of its deliveries under way and has those ticks
// delivered again, as Dapr's scheduler does on a quorum change: a sidecar
// that stopped answering does not hold them for good. A replica leaving
// changes only who owns its jobs.
package engine

import (
	"container/heap"
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"

	"github.com/tandemrun/tandem/scheduler/pool"
	"github.com/tandemrun/tandem/scheduler/store"
)

// Deliverer delivers a tick and returns the sidecar's answer (pool.Pool).
type Deliverer interface {
	Deliver(ctx context.Context, t pool.Tick) (pool.Result, error)
}

// StreamWaiter is a Deliverer that tells when a tick's target has a
// stream (pool.Pool): a tick waits for one before it takes a delivery
// worker, so that an app that is not connected holds none.
type StreamWaiter interface {
	WaitStream(ctx context.Context, meta *schedulerv1.JobMetadata) error
}

// Hooks are told what happens to ticks (for metrics); nil ones are
// skipped.
type Hooks struct {
	// Triggered: a tick was delivered and the sidecar succeeded; took is
	// from its trigger (due, with a stream to take it), through its claim,
	// to the answer (Dapr's trigger latency).
	Triggered func(meta *schedulerv1.JobMetadata, took time.Duration)
	// Failed: the sidecar answered FAILED.
	Failed func(meta *schedulerv1.JobMetadata, took time.Duration)
	// Replicas: the replica set changed; count replicas are live and this
	// one is at index (-1 while it is not among them).
	Replicas func(count, index int)
}

// Options configure an Engine.
type Options struct {
	Client *clientv3.Client
	// ID is this replica's ID; Address is where sidecars reach it
	// (published to WatchHosts).
	ID      string
	Address string
	Pool    Deliverer
	// Workers bounds the deliveries under way (default 1024).
	Workers int
	// LeaseTTL is the leadership lease's time to live: how long a dead
	// replica's jobs wait for another owner (default 10s).
	LeaseTTL time.Duration
	// DrainTimeout bounds how long a graceful stop waits for deliveries
	// under way (default 5s).
	DrainTimeout time.Duration
	Hooks        Hooks
	Log          *slog.Logger
}

// Engine is one replica's share of the triggering.
type Engine struct {
	o   Options
	log *slog.Logger
	cli *clientv3.Client
	sem chan struct{}

	mu       sync.Mutex
	jobs     map[string]*entry
	leaders  map[string]store.Leader
	members  []string
	idx      int // this replica's place in members, -1 when not there
	timers   timerHeap
	synced   bool
	hostSubs map[chan []string]struct{}
	wake     chan struct{}
	inflight sync.WaitGroup
	// leases are the leadership leases of the replicas, by ID.
	leases map[string]int64
	// seenRev is the store revision the engine's cache has caught up
	// with (the listing's, then the last watched event's).
	seenRev int64
	// accepting: the ticker runs, so DeliverClaimed may start deliveries
	// (Run clears it before it waits for those under way).
	accepting bool
	// epoch is the context of the deliveries started since the replica
	// set last changed, under deliveries (which ends at shutdown);
	// endEpoch ends it, which sends their ticks again.
	deliveries context.Context
	epoch      context.Context
	endEpoch   context.CancelFunc
}

// entry is the cached state of one job.
type entry struct {
	name       string
	job        *store.Job
	jobRev     int64
	counter    *store.Counter
	counterRev int64
	local      bool // a delivery of this replica is under way
	gen        uint64
	// freshRev is the counter revision of a claim stored with the job
	// (Claim) that no delivery has used yet: the watch's path delivers it
	// without claiming it again.
	freshRev int64
}

// New returns an engine; Run runs it.
func New(o Options) *Engine {
	if o.Workers <= 0 {
		o.Workers = 1024
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = 10 * time.Second
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = 5 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Engine{o: o, log: o.Log, cli: o.Client, sem: make(chan struct{}, o.Workers),
		jobs: map[string]*entry{}, leaders: map[string]store.Leader{}, leases: map[string]int64{}, idx: -1,
		hostSubs: map[chan []string]struct{}{}, wake: make(chan struct{}, 1)}
}

// Run keeps the replica's leadership, follows the store and triggers the
// replica's ticks until ctx ends; then it stops triggering, lets the
// deliveries under way finish (up to DrainTimeout) and gives up its lease.
func (e *Engine) Run(ctx context.Context) error {
	deliverCtx, cancelDeliveries := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelDeliveries()
	e.mu.Lock()
	e.deliveries = deliverCtx
	e.epoch, e.endEpoch = context.WithCancel(deliverCtx)
	e.mu.Unlock()
	errc := make(chan error, 3)
	var wg sync.WaitGroup
	leadCtx, stopLead := context.WithCancel(context.WithoutCancel(ctx))
	defer stopLead()
	// runCtx ends the follower and the ticker when ctx ends or one of the
	// three fails.
	runCtx, stopRun := context.WithCancel(ctx)
	defer stopRun()
	tickerDone := make(chan struct{})
	wg.Add(3)
	go func() { defer wg.Done(); errc <- e.lead(leadCtx) }()
	go func() { defer wg.Done(); errc <- e.follow(runCtx) }()
	go func() { defer wg.Done(); defer close(tickerDone); errc <- e.tick(runCtx, deliverCtx) }()
	e.mu.Lock()
	e.accepting = true
	e.mu.Unlock()

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	// Drain: once the ticker has returned no new delivery starts (so
	// inflight.Wait does not race its Add); those under way may end.
	stopRun()
	<-tickerDone
	e.mu.Lock()
	e.accepting = false
	e.mu.Unlock()
	drained := make(chan struct{})
	go func() { e.inflight.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(e.o.DrainTimeout):
		e.log.Warn("deliveries still under way at shutdown; their ticks will be delivered again by the next owner")
		cancelDeliveries()
		<-drained
	}
	stopLead()
	wg.Wait()
	return err
}

// --- leadership --------------------------------------------------------

// lead keeps this replica's leadership key on a lease, granting a new
// lease when the old one is lost (expired or revoked), and revokes it when
// ctx ends so that the other replicas take over at once.
func (e *Engine) lead(ctx context.Context) error {
	val, err := store.Encode(store.Leader{ID: e.o.ID, Address: e.o.Address})
	if err != nil {
		return err
	}
	ttl := int64(e.o.LeaseTTL / time.Second)
	for ctx.Err() == nil {
		lease, err := e.cli.Grant(ctx, ttl)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			e.log.Warn("leadership lease not granted; retrying", "error", err)
			sleep(ctx, time.Second)
			continue
		}
		if _, err := e.cli.Put(ctx, store.LeadershipKey(e.o.ID), val, clientv3.WithLease(lease.ID)); err != nil {
			if ctx.Err() == nil {
				e.log.Warn("leadership key not written; retrying", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		ka, err := e.cli.KeepAlive(ctx, lease.ID)
		if err != nil {
			continue
		}
		e.log.Info("leadership key written", "key", store.LeadershipKey(e.o.ID), "lease", int64(lease.ID))
		for range ka {
		}
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			_, _ = e.cli.Revoke(rctx, lease.ID)
			cancel()
			break
		}
		e.log.Warn("leadership lease lost; writing a new one", "lease", int64(lease.ID))
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Ready reports whether this replica has its leadership key and follows
// the store.
func (e *Engine) Ready() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.synced && e.idx >= 0
}

// Hosts returns the addresses of the live replicas and a channel that
// receives them again on each change; cancel stops it.
func (e *Engine) Hosts() (hosts []string, updates <-chan []string, cancel func()) {
	ch := make(chan []string, 1)
	e.mu.Lock()
	e.hostSubs[ch] = struct{}{}
	hosts = e.hostsLocked()
	e.mu.Unlock()
	return hosts, ch, func() {
		e.mu.Lock()
		delete(e.hostSubs, ch)
		e.mu.Unlock()
	}
}

func (e *Engine) hostsLocked() []string {
	hosts := make([]string, 0, len(e.leaders))
	for _, id := range e.members {
		hosts = append(hosts, e.leaders[id].Address)
	}
	return hosts
}

// --- following the store -------------------------------------------------

// follow lists everything under dapr/ and then watches it, listing again
// when the watch breaks.
func (e *Engine) follow(ctx context.Context) error {
	for ctx.Err() == nil {
		resp, err := e.cli.Get(ctx, "dapr/", clientv3.WithPrefix())
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("listing the store failed; retrying", "error", err)
				sleep(ctx, time.Second)
			}
			continue
		}
		e.reset(resp.Kvs)
		e.mu.Lock()
		e.seenRev = max(e.seenRev, resp.Header.Revision)
		e.mu.Unlock()
		wctx, cancel := context.WithCancel(ctx)
		wch := e.cli.Watch(clientv3.WithRequireLeader(wctx), "dapr/", clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1))
		for wr := range wch {
			if err := wr.Err(); err != nil {
				e.log.Warn("store watch broke; listing again", "error", err)
				break
			}
			e.mu.Lock()
			for _, ev := range wr.Events {
				e.applyLocked(ev.Kv, ev.Type == mvccpb.DELETE)
				e.seenRev = max(e.seenRev, ev.Kv.ModRevision)
			}
			e.mu.Unlock()
		}
		cancel()
	}
	return nil
}

func (e *Engine) reset(kvs []*mvccpb.KeyValue) {
	e.mu.Lock()
	defer e.mu.Unlock()
	seen := map[string]bool{}
	leaders := map[string]bool{}
	for _, kv := range kvs {
		k := string(kv.Key)
		switch {
		case len(k) > len(store.JobsPrefix) && k[:len(store.JobsPrefix)] == store.JobsPrefix:
			seen["j"+k[len(store.JobsPrefix):]] = true
		case len(k) > len(store.CountersPrefix) && k[:len(store.CountersPrefix)] == store.CountersPrefix:
			seen["c"+k[len(store.CountersPrefix):]] = true
		case len(k) > len(store.LeadershipPrefix) && k[:len(store.LeadershipPrefix)] == store.LeadershipPrefix:
			leaders[k[len(store.LeadershipPrefix):]] = true
		}
		e.applyLocked(kv, false)
	}
	for name, ent := range e.jobs {
		if ent.job != nil && !seen["j"+name] {
			ent.job, ent.jobRev = nil, 0
		}
		if ent.counter != nil && !seen["c"+name] {
			ent.counter, ent.counterRev = nil, 0
		}
		e.scheduleLocked(ent)
	}
	for id := range e.leaders {
		if !leaders[id] {
			delete(e.leaders, id)
			delete(e.leases, id)
		}
	}
	e.membersChangedLocked()
	e.synced = true
}

func (e *Engine) entryLocked(name string) *entry {
	ent := e.jobs[name]
	if ent == nil {
		ent = &entry{name: name}
		e.jobs[name] = ent
	}
	return ent
}

// applyLocked applies one key's new value (or deletion).
func (e *Engine) applyLocked(kv *mvccpb.KeyValue, deleted bool) {
	k := string(kv.Key)
	switch {
	case len(k) > len(store.JobsPrefix) && k[:len(store.JobsPrefix)] == store.JobsPrefix:
		name := k[len(store.JobsPrefix):]
		ent := e.entryLocked(name)
		if deleted {
			ent.job, ent.jobRev = nil, 0
		} else if kv.ModRevision > ent.jobRev {
			j, err := store.DecodeJob(kv.Value)
			if err != nil {
				e.log.Error("job record unreadable; skipping it", "job", name, "error", err)
				return
			}
			ent.job, ent.jobRev = j, kv.ModRevision
		}
		e.scheduleLocked(ent)
	case len(k) > len(store.CountersPrefix) && k[:len(store.CountersPrefix)] == store.CountersPrefix:
		name := k[len(store.CountersPrefix):]
		ent := e.entryLocked(name)
		if deleted {
			ent.counter, ent.counterRev = nil, 0
		} else if kv.ModRevision > ent.counterRev {
			c, err := store.DecodeCounter(kv.Value)
			if err != nil {
				e.log.Error("counter record unreadable; starting the job's count again", "job", name, "error", err)
				c = nil
			}
			ent.counter, ent.counterRev = c, kv.ModRevision
		}
		e.scheduleLocked(ent)
	case len(k) > len(store.LeadershipPrefix) && k[:len(store.LeadershipPrefix)] == store.LeadershipPrefix:
		id := k[len(store.LeadershipPrefix):]
		if lease, known := e.leases[id]; !deleted && (!known || lease != kv.Lease) {
			e.newEpochLocked()
		}
		if deleted {
			delete(e.leaders, id)
			delete(e.leases, id)
		} else {
			e.leases[id] = kv.Lease
			l, err := store.DecodeLeader(kv.Value)
			if err != nil {
				// A replica that writes another format (Dapr's own) still
				// counts as a member.
				l = &store.Leader{ID: id}
			}
			e.leaders[id] = *l
		}
		if e.synced {
			e.membersChangedLocked()
		}
	}
}

// membersChangedLocked recomputes the replica set and this replica's
// share, and tells WatchHosts subscribers.
func (e *Engine) membersChangedLocked() {
	members := make([]string, 0, len(e.leaders))
	for id := range e.leaders {
		members = append(members, id)
	}
	sort.Strings(members)
	if slices.Equal(members, e.members) {
		// Addresses may still have changed.
		e.notifyHostsLocked()
		return
	}
	e.members = members
	e.idx = slices.Index(members, e.o.ID)
	e.log.Info("replica set changed", "replicas", members, "index", e.idx)
	if e.o.Hooks.Replicas != nil {
		e.o.Hooks.Replicas(len(members), e.idx)
	}
	for _, ent := range e.jobs {
		e.scheduleLocked(ent)
	}
	e.notifyHostsLocked()
}

// newEpochLocked ends the deliveries under way (their ticks are delivered
// again) and starts a new epoch.
func (e *Engine) newEpochLocked() {
	if e.endEpoch == nil {
		return // not running yet: nothing under way
	}
	e.endEpoch()
	e.epoch, e.endEpoch = context.WithCancel(e.deliveries)
}

func (e *Engine) notifyHostsLocked() {
	hosts := e.hostsLocked()
	for ch := range e.hostSubs {
		select {
		case <-ch:
		default:
		}
		ch <- hosts
	}
}

// --- timing ------------------------------------------------------------

// ownsLocked reports whether this replica triggers the job.
func (e *Engine) ownsLocked(j *store.Job) bool {
	return e.idx >= 0 && len(e.members) > 0 && j.UID%uint64(len(e.members)) == uint64(e.idx)
}

// plan is what to do next for a job.
type plan struct {
	at      time.Time
	tick    time.Time // the scheduled time of the tick to deliver
	finish  bool      // no tick left: delete the job
	release bool      // give up this replica's claim on a job another replica owns
}

// counterOf is the job's counter, fresh when the stored one belongs to an
// earlier job of the name.
func counterOf(ent *entry) store.Counter {
	if ent.counter != nil && ent.counter.JobUID == ent.job.UID {
		return *ent.counter
	}
	return store.Counter{JobUID: ent.job.UID}
}

// nextLocked is the job's next step, ok false when there is nothing for
// this replica to do now (not its job, a delivery under way, or a tick
// claimed by another live replica).
func (e *Engine) nextLocked(ent *entry) (plan, bool) {
	if ent.job == nil || ent.local {
		return plan{}, false
	}
	c := counterOf(ent)
	if !e.ownsLocked(ent.job) {
		if !c.Inflight.IsZero() && c.Owner == e.o.ID {
			// Claimed here (Claim) but owned by another replica since: the
			// owner leaves a live replica's claim alone, so it is given up.
			return plan{release: true}, true
		}
		return plan{}, false
	}
	if !c.Inflight.IsZero() {
		if _, alive := e.leaders[c.Owner]; alive && c.Owner != e.o.ID {
			return plan{}, false
		}
		return plan{at: time.Time{}, tick: c.Inflight}, true
	}
	next, ok := ent.job.Plan.Next(c.Count, c.Last)
	if !ok {
		return plan{finish: true}, true
	}
	if !c.RetryAt.IsZero() {
		return plan{at: c.RetryAt, tick: next}, true
	}
	return plan{at: next, tick: next}, true
}

func (e *Engine) scheduleLocked(ent *entry) {
	ent.gen++
	if ent.job == nil && ent.counter == nil && !ent.local {
		delete(e.jobs, ent.name)
		return
	}
	p, ok := e.nextLocked(ent)
	if !ok {
		return
	}
	heap.Push(&e.timers, timer{at: p.at, name: ent.name, gen: ent.gen})
	if e.timers[0].name == ent.name {
		select {
		case e.wake <- struct{}{}:
		default:
		}
	}
}

// tick starts the due ticks of this replica's jobs until ctx ends.
func (e *Engine) tick(ctx, deliverCtx context.Context) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		e.mu.Lock()
		now := time.Now()
		wait := time.Hour
		for len(e.timers) > 0 {
			top := e.timers[0]
			if top.at.After(now) {
				wait = top.at.Sub(now)
				break
			}
			heap.Pop(&e.timers)
			ent := e.jobs[top.name]
			if ent == nil || ent.gen != top.gen {
				continue
			}
			p, ok := e.nextLocked(ent)
			if !ok {
				continue
			}
			if p.at.After(now) { // changed since it was pushed
				heap.Push(&e.timers, timer{at: p.at, name: ent.name, gen: ent.gen})
				continue
			}
			ent.local = true
			e.inflight.Add(1)
			// A tick claimed with its job (Claim) whose cache the watch
			// filled before DeliverClaimed came needs no claim again.
			c := counterOf(ent)
			mine := ent.freshRev != 0 && ent.freshRev == ent.counterRev && !p.finish && !p.release && c.Owner == e.o.ID && c.Inflight.Equal(p.tick)
			ent.freshRev = 0
			go e.run(deliverCtx, e.epoch, step{name: ent.name, job: ent.job, jobRev: ent.jobRev,
				counter: c, counterRev: ent.counterRev, plan: p, claimed: mine})
		}
		e.mu.Unlock()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-t.C:
		}
	}
}

// step is one tick's delivery, with the store revisions it was decided
// on.
type step struct {
	name       string
	job        *store.Job
	jobRev     int64
	counter    store.Counter
	counterRev int64
	plan       plan
	// claimed: the job's creator stored the tick's claim with the job
	// (DeliverClaimed).
	claimed bool
}

// run claims, delivers and records one tick; the delivery itself ends
// with epoch, the store writes with ctx.
func (e *Engine) run(ctx, epoch context.Context, s step) {
	defer e.inflight.Done()
	retryIn := time.Duration(0)
	defer func() {
		e.mu.Lock()
		if ent := e.jobs[s.name]; ent != nil {
			ent.local = false
			if retryIn > 0 {
				ent.gen++
				heap.Push(&e.timers, timer{at: time.Now().Add(retryIn), name: ent.name, gen: ent.gen})
				select {
				case e.wake <- struct{}{}:
				default:
				}
			} else {
				e.scheduleLocked(ent)
			}
		}
		e.mu.Unlock()
	}()
	if s.plan.release {
		if err := e.release(ctx, s, s.counter); err != nil {
			retryIn = time.Second
		}
		return
	}
	if w, ok := e.o.Pool.(StreamWaiter); ok && !s.plan.finish {
		// Unclaimed while it waits: a replica set change (the epoch's
		// end) hands the job to its new owner.
		if meta, err := s.job.DecodeMetadata(); err == nil {
			if err := w.WaitStream(epoch, meta); err != nil {
				return
			}
		}
	}
	// The trigger latency runs from here, as Dapr's from its trigger: the
	// claim's write is in it.
	start := time.Now()
	select {
	case e.sem <- struct{}{}:
		defer func() { <-e.sem }()
	case <-ctx.Done():
		return
	}
	if s.plan.finish {
		if err := e.finish(ctx, s); err != nil {
			e.log.Warn("deleting a finished job failed; retrying", "job", s.name, "error", err)
			retryIn = time.Second
		}
		return
	}
	claimed := s.counter
	if !s.claimed {
		claimed.Inflight, claimed.Owner, claimed.RetryAt = s.plan.tick, e.o.ID, time.Time{}
		rev, ok, err := e.put(ctx, s, claimed)
		if err != nil {
			e.log.Warn("claiming a tick failed; retrying", "job", s.name, "error", err)
			retryIn = time.Second
			return
		}
		if !ok {
			return // the job or its counter changed: the watch brings the news
		}
		s.counterRev = rev
	}
	job, meta, err := s.job.Decode()
	if err != nil {
		e.log.Error("job record unreadable; dropping the tick", "job", s.name, "error", err)
		e.done(ctx, s, claimed)
		return
	}
	prefix, _ := store.TargetPrefix(meta)
	res, err := e.o.Pool.Deliver(epoch, pool.Tick{Name: s.name[len(prefix):], Data: job.GetData(), Metadata: meta})
	if err != nil {
		if ctx.Err() != nil {
			return // shutting down: the claim stays, the next owner delivers it
		}
		// The replica set changed: the claim is given up, and the job's
		// owner in the new set delivers the tick again.
		if err := e.release(ctx, s, claimed); err != nil {
			retryIn = time.Second
		}
		return
	}
	if res == schedulerv1.WatchJobsRequestResultStatus_SUCCESS {
		if e.o.Hooks.Triggered != nil {
			e.o.Hooks.Triggered(meta, time.Since(start))
		}
		e.done(ctx, s, claimed)
		return
	}
	if e.o.Hooks.Failed != nil {
		e.o.Hooks.Failed(meta, time.Since(start))
	}
	e.failed(ctx, s, claimed, job)
}

// release gives up this replica's claim c of s's tick.
func (e *Engine) release(ctx context.Context, s step, c store.Counter) error {
	c.Inflight, c.Owner = time.Time{}, ""
	if _, _, err := e.put(ctx, s, c); err != nil {
		e.log.Warn("giving up a tick's claim failed; retrying", "job", s.name, "error", err)
		return err
	}
	return nil
}

// Claim is for a new job whose first tick is due now: it returns a job
// UID this replica owns in the current replica set and the job's counter
// with that tick claimed by this replica, to store in the job's own write
// and hand to DeliverClaimed, which delivers the tick at once. This saves
// the claim's write and the watch's round trip. ok is false when this
// replica owns no job now (not a member, not running).
func (e *Engine) Claim(tick time.Time) (uid uint64, c store.Counter, ok bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := uint64(len(e.members))
	if !e.accepting || e.idx < 0 || n == 0 {
		return 0, store.Counter{}, false
	}
	uid = rand.Uint64N(math.MaxUint64/n)*n + uint64(e.idx)
	return uid, store.Counter{JobUID: uid, Inflight: tick, Owner: e.o.ID}, true
}

// DeliverClaimed delivers the first tick of job name, stored at revision
// rev together with its counter c as Claim made it. A cache that has seen
// the write already, a delivery of the name under way here, or a replica set
// that changed meanwhile leave the tick to the usual path, which delivers
// a claim of this replica's (or, when another replica owns the job now,
// gives it up so that the owner does: nextLocked's release).
func (e *Engine) DeliverClaimed(name string, job *store.Job, rev int64, c store.Counter) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.accepting {
		return // stopping: a claim of this replica's is delivered again at its restart, or by the next owner
	}
	if e.seenRev >= rev {
		// The cache has the write already: the watch's path delivers the
		// claim (or did, and the job may be gone since). Unused, it needs
		// no claim again.
		if ent := e.jobs[name]; ent != nil && !ent.local && ent.counterRev == rev {
			ent.freshRev = rev
		}
		return
	}
	ent := e.entryLocked(name)
	if ent.local || ent.jobRev > rev || ent.counterRev > rev {
		return
	}
	cc := c
	ent.job, ent.jobRev, ent.counter, ent.counterRev = job, rev, &cc, rev
	p, ok := e.nextLocked(ent)
	if !ok || p.finish || p.release || !p.tick.Equal(c.Inflight) {
		e.scheduleLocked(ent)
		return
	}
	ent.gen++ // a timer pushed for it earlier is stale
	ent.local = true
	e.inflight.Add(1)
	go e.run(e.deliveries, e.epoch, step{name: name, job: job, jobRev: rev, counter: c, counterRev: rev, plan: p, claimed: true})
}

// done records the tick done and deletes the job when it has no tick
// left.
func (e *Engine) done(ctx context.Context, s step, c store.Counter) {
	c.Count++
	c.Last = c.Inflight
	c.Attempts = 0
	c.Inflight, c.Owner, c.RetryAt = time.Time{}, "", time.Time{}
	if _, more := s.job.Plan.Next(c.Count, c.Last); !more {
		if err := e.finish(ctx, s); err != nil {
			e.log.Warn("deleting a finished job failed", "job", s.name, "error", err)
		}
		return
	}
	if _, _, err := e.put(ctx, s, c); err != nil {
		e.log.Warn("recording a delivered tick failed; it may be delivered again", "job", s.name, "error", err)
	}
}

// failed applies the job's failure policy to a tick the sidecar failed.
func (e *Engine) failed(ctx context.Context, s step, c store.Counter, job *schedulerv1.Job) {
	c.Attempts++
	fp := job.GetFailurePolicy()
	if cp := fp.GetConstant(); cp != nil && (cp.MaxRetries == nil || cp.GetMaxRetries() >= c.Attempts) {
		c.RetryAt = time.Now().Add(cp.GetInterval().AsDuration())
		c.Inflight, c.Owner = time.Time{}, ""
		if _, _, err := e.put(ctx, s, c); err != nil {
			e.log.Warn("recording a failed tick failed", "job", s.name, "error", err)
		}
		return
	}
	e.done(ctx, s, c)
}

// put writes the job's counter if neither it nor the job changed since s
// was decided; it returns the new revision and whether it was written.
func (e *Engine) put(ctx context.Context, s step, c store.Counter) (int64, bool, error) {
	val, err := store.Encode(c)
	if err != nil {
		return 0, false, err
	}
	ck := store.CounterKey(s.name)
	resp, err := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(store.JobKey(s.name)), "=", s.jobRev),
		clientv3.Compare(clientv3.ModRevision(ck), "=", s.counterRev),
	).Then(clientv3.OpPut(ck, val)).Commit()
	if err != nil {
		return 0, false, fmt.Errorf("write counter: %w", err)
	}
	if !resp.Succeeded {
		return 0, false, nil
	}
	rev := resp.Header.Revision
	e.mu.Lock()
	if ent := e.jobs[s.name]; ent != nil && rev > ent.counterRev {
		cc := c
		ent.counter, ent.counterRev = &cc, rev
	}
	e.mu.Unlock()
	return rev, true, nil
}

// finish deletes a job with no tick left, and its counter, if the job did
// not change meanwhile.
func (e *Engine) finish(ctx context.Context, s step) error {
	_, err := e.cli.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(store.JobKey(s.name)), "=", s.jobRev),
	).Then(clientv3.OpDelete(store.JobKey(s.name)), clientv3.OpDelete(store.CounterKey(s.name))).Commit()
	if err != nil {
		return fmt.Errorf("delete finished job: %w", err)
	}
	return nil
}

// --- timer heap --------------------------------------------------------

type timer struct {
	at   time.Time
	name string
	gen  uint64
}

type timerHeap []timer

func (h timerHeap) Len() int           { return len(h) }
func (h timerHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h timerHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)        { *h = append(*h, x.(timer)) }
func (h *timerHeap) Pop() any {
	old := *h
	t := old[len(old)-1]
	*h = old[:len(old)-1]
	return t
}
