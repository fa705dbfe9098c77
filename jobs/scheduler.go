package jobs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/internal/rawio"
)

// ErrDisabled is the error of every call when no scheduler address is
// configured (daprd's words).
var ErrDisabled = errors.New("scheduler clients are disabled")

// Config configures a Scheduler.
type Config struct {
	// Addresses are --scheduler-host-address's entries; empty, blank and
	// quoted-empty entries are ignored, and with none the scheduler is
	// disabled (as in daprd).
	Addresses []string
	AppID     string
	Namespace string
	// Streams is the number of WatchJobs streams per scheduler host
	// (--scheduler-job-streams); at least 1.
	Streams uint
	// DialOptions carry the transport credentials: mTLS with the
	// sidecar's SVID, authorizing the scheduler's SPIFFE ID, when mTLS is
	// on; insecure otherwise.
	DialOptions []grpc.DialOption
	// ReadyTimeout bounds how long a call waits for the scheduler hosts
	// to be known before it fails saying the scheduler is not reached
	// (DefaultReadyTimeout if 0): a scheduler that is down, or that the
	// sidecar cannot authenticate, must not hang the API's callers.
	ReadyTimeout time.Duration
	// ConcurrencyLimits go on every stream's opening message: the
	// cluster-wide limits of the workflow engine's runs (the
	// Configuration's spec.workflow globalMaxConcurrent*Invocations and
	// *ConcurrencyLimits), which the scheduler enforces by holding
	// back the triggers of the limited actor types (and, by name, of
	// those whose reminders carry that concurrency key) while as many
	// are unanswered.
	ConcurrencyLimits []*schedulerv1.ConcurrencyLimit
	Log               *slog.Logger
}

// DefaultReadyTimeout is Config.ReadyTimeout's default.
const DefaultReadyTimeout = 10 * time.Second

// Trigger handles one triggered job and returns the result the scheduler
// is acked with.
type Trigger func(ctx context.Context, job *schedulerv1.WatchJobsResponse) schedulerv1.WatchJobsRequestResultStatus

// Scheduler is the sidecar's connection to the schedulers.
type Scheduler struct {
	cfg   Config
	addrs []string
	log   *slog.Logger

	mu        sync.Mutex
	hosts     []string           // connected host addresses, as WatchHosts named them
	conns     []*grpc.ClientConn // one per host
	next      int                // round robin over conns
	ready     chan struct{}      // closed once hosts are known (or disabled)
	readyOnce sync.Once
	lastErr   error         // why the hosts are not known yet, for the callers that give up
	changed   chan struct{} // closed and replaced when hosts or targets change
	app       Trigger       // nil: the app takes no jobs now
	actors    Trigger
	types     []string // sorted actor types whose reminders this sidecar takes
}

// New builds a Scheduler; it connects only in Run.
func New(cfg Config) *Scheduler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Streams < 1 {
		cfg.Streams = 1
	}
	if cfg.ReadyTimeout <= 0 {
		cfg.ReadyTimeout = DefaultReadyTimeout
	}
	return &Scheduler{cfg: cfg, addrs: Addresses(cfg.Addresses), log: cfg.Log, ready: make(chan struct{}), changed: make(chan struct{})}
}

// Addresses are the usable entries of --scheduler-host-address: daprd
// reads empty, blank and quoted-empty ones as no address.
func Addresses(in []string) []string {
	var out []string
	for _, a := range in {
		if a = strings.TrimSpace(strings.Trim(strings.TrimSpace(a), `"'`)); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// Enabled reports whether a scheduler address is configured.
func (s *Scheduler) Enabled() bool { return s != nil && len(s.addrs) > 0 }

// Ready reports whether the scheduler hosts are known (daprd is not
// healthy before), or the scheduler is disabled.
func (s *Scheduler) Ready() bool {
	if s == nil {
		return true
	}
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// ConnectedAddresses are the scheduler hosts the sidecar is connected to
// (the metadata API's scheduler.connected_addresses); nil when disabled.
func (s *Scheduler) ConnectedAddresses() []string {
	if !s.Enabled() {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.hosts)
}

// Client returns a client of the next scheduler host in turn, waiting for
// the hosts to be known until ctx ends. Use grpc.WaitForReady on calls: a
// host may be restarting.
func (s *Scheduler) Client(ctx context.Context) (schedulerv1.SchedulerClient, error) {
	if !s.Enabled() {
		return nil, ErrDisabled
	}
	t := time.NewTimer(s.cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		s.mu.Lock()
		last := s.lastErr
		s.mu.Unlock()
		if last == nil {
			last = errors.New("no answer yet")
		}
		return nil, status.Errorf(codes.Unavailable, "scheduler not reached at %s after %s: %v",
			strings.Join(s.addrs, ","), s.cfg.ReadyTimeout, last)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) == 0 {
		return nil, errors.New("no scheduler client initialized")
	}
	s.next = (s.next + 1) % len(s.conns)
	return schedulerv1.NewSchedulerClient(s.conns[s.next]), nil
}

// Call runs fn with the next scheduler client, again with the next one
// when a host answers Canceled (it is going away), as daprd does.
func Call[T any](ctx context.Context, s *Scheduler, fn func(context.Context, schedulerv1.SchedulerClient) (T, error)) (T, error) {
	for {
		c, err := s.Client(ctx)
		if err != nil {
			var zero T
			return zero, err
		}
		out, err := fn(ctx, c)
		if status.Code(err) == codes.Canceled && ctx.Err() == nil {
			continue
		}
		return out, err
	}
}

// SetApp makes the app take its jobs through trigger (nil: not now, the
// app is unhealthy or gone); the streams reconnect with the new targets.
func (s *Scheduler) SetApp(trigger Trigger) {
	if s == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.app == nil && trigger == nil {
		return
	}
	s.app = trigger
	s.changeLocked()
}

// SetActorTypes makes the sidecar take the reminders of the actor types
// through trigger; no types: none. The streams reconnect when the set
// changes.
func (s *Scheduler) SetActorTypes(types []string, trigger Trigger) {
	if s == nil {
		return
	}
	types = slices.Clone(types)
	slices.Sort(types)
	types = slices.Compact(types)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actors = trigger
	if slices.Equal(types, s.types) {
		return
	}
	s.types = types
	s.changeLocked()
}

func (s *Scheduler) changeLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Scheduler) markReady() { s.readyOnce.Do(func() { close(s.ready) }) }

// Run watches the scheduler hosts and holds the job streams until ctx
// ends. It returns nil then; a scheduler that cannot be reached is
// retried, never an error.
func (s *Scheduler) Run(ctx context.Context) error {
	if !s.Enabled() {
		s.log.Warn("No scheduler host addresses provided. Scheduler disabled")
		s.markReady()
		<-ctx.Done()
		return nil
	}
	// Stopping: the streams end first, then the connections close.
	defer s.closeConns()
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { s.runStreams(ctx) })
	for ctx.Err() == nil {
		if err := s.watchHosts(ctx); err != nil && ctx.Err() == nil {
			s.mu.Lock()
			s.lastErr = err
			s.mu.Unlock()
			s.log.Warn("scheduler host watch failed; reconnecting (is the scheduler running at --scheduler-host-address?)",
				"error", err)
		}
		sleep(ctx, jitter(time.Second, time.Second/2))
	}
	return nil
}

// watchHosts asks one of the configured addresses for the scheduler hosts
// and connects to each list it sends, until the stream breaks.
func (s *Scheduler) watchHosts(ctx context.Context) error {
	addr := s.addrs[rand.IntN(len(s.addrs))]
	conn, err := s.dial(addr)
	if err != nil {
		return fmt.Errorf("scheduler %s: %w", addr, err)
	}
	defer conn.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := schedulerv1.NewSchedulerClient(conn).WatchHosts(wctx, &schedulerv1.WatchHostsRequest{})
	if err != nil {
		return fmt.Errorf("watch scheduler hosts at %s: %w", addr, err)
	}
	for {
		resp, err := stream.Recv()
		if status.Code(err) == codes.Unimplemented {
			// An old scheduler: the configured addresses are the hosts.
			s.setHosts(s.addrs)
			<-ctx.Done()
			return nil
		}
		if err != nil {
			return fmt.Errorf("watch scheduler hosts at %s: %w", addr, err)
		}
		hosts := make([]string, 0, len(resp.GetHosts()))
		for _, h := range resp.GetHosts() {
			hosts = append(hosts, h.GetAddress())
		}
		s.log.Info("Connected and received scheduler hosts addresses", "hosts", hosts)
		if err := s.setHosts(hosts); err != nil {
			return err
		}
	}
}

// setHosts connects to hosts, replacing the connections to the previous
// list, and restarts the streams.
func (s *Scheduler) setHosts(hosts []string) error {
	conns := make([]*grpc.ClientConn, 0, len(hosts))
	for _, h := range hosts {
		c, err := s.dial(h)
		if err != nil {
			for _, c := range conns {
				_ = c.Close()
			}
			return fmt.Errorf("scheduler client for %s: %w", h, err)
		}
		conns = append(conns, c)
	}
	s.mu.Lock()
	old := s.conns
	s.hosts, s.conns = slices.Clone(hosts), conns
	s.changeLocked()
	s.mu.Unlock()
	s.markReady()
	// Calls in flight on the old connections fail with Canceled and are
	// made again on the new ones (Call).
	for _, c := range old {
		_ = c.Close()
	}
	return nil
}

func (s *Scheduler) closeConns() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (s *Scheduler) dial(addr string) (*grpc.ClientConn, error) {
	opts := append([]grpc.DialOption{
		grpc.WithContextDialer(rawio.Dial),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(math.MaxInt32), grpc.MaxCallSendMsgSize(math.MaxInt32)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 3 * time.Second, Timeout: 5 * time.Second}),
		// A restarted scheduler is found again within a couple of seconds.
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 2 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		}),
	}, s.cfg.DialOptions...)
	return grpc.NewClient(addr, opts...)
}

// jitter is d ± spread/2, at random.
func jitter(d, spread time.Duration) time.Duration {
	return d - spread/2 + time.Duration(rand.Int64N(int64(spread)+1))
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
