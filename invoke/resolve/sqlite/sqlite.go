// Package sqlite is Dapr's SQLite name resolver: every sidecar on a host
// registers a row in one shared database file and finds its peers there.
//
// The file is wire-compatible with Dapr's nameresolution/sqlite, so daprd
// and tandemd processes sharing it find each other: the same hosts table
// (registration_id, address, app_id, namespace, last_update as Unix
// seconds), the same metadata table and "nr-migrations"/"nr-last-cleanup"
// keys, and the same freshness rule (a row is live while
// unixepoch(CURRENT_TIMESTAMP) - last_update < updateInterval seconds).
//
// Configuration (spec.nameResolution.configuration), as in Dapr:
//
//	connectionString   file path or "file:" URI (required)
//	updateInterval     heartbeat validity, whole seconds (5s)
//	timeout            per database operation, >= 1s (1s)
//	busyTimeout        SQLite busy_timeout (800ms)
//	tableName          hosts table (hosts)
//	metadataTableName  metadata table (metadata)
//	cleanupInterval    stale-row cleanup, <= 0 disables (1h)
//	disableWAL         keep the rollback journal (false)
//
// Differences from Dapr, deliberate: the row stores the sidecar's
// namespace (Dapr stores ""), and a request with a namespace matches rows of
// that namespace or of "" (Dapr's rows); a lost registration is re-inserted
// rather than crashing the process; and Resolve goes round robin over the
// live rows instead of picking one at random.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/tandemrun/tandem/invoke/resolve"
)

// Resolver registers this sidecar in the shared file and resolves peers.
type Resolver struct {
	opts  Options
	log   *slog.Logger
	db    *sql.DB
	self  resolve.Instance
	addr  string // this sidecar's host:port, "" when not registering
	regID string

	mu       sync.Mutex
	counters map[resolve.Request]uint64

	stop      chan struct{}
	runMu     sync.Mutex
	closed    bool           // Close has begun: Run returns at once
	wg        sync.WaitGroup // Run
	closeOnce sync.Once
	closeErr  error
}

var (
	_ resolve.Resolver = (*Resolver)(nil)
	_ resolve.Lister   = (*Resolver)(nil)
	_ resolve.Runner   = (*Resolver)(nil)
)

// New opens the database, migrates it to Dapr's layout and registers
// cfg.Self (unless cfg.Self.AppID is empty: then it only resolves). Run
// keeps the registration alive.
func New(cfg resolve.Config) (*Resolver, error) {
	opts, err := ParseOptions(cfg.Configuration)
	if err != nil {
		return nil, fmt.Errorf("sqlite name resolution: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("component", "nameresolution.sqlite")

	r := &Resolver{
		opts:     opts,
		log:      log,
		self:     cfg.Self,
		counters: make(map[resolve.Request]uint64),
		stop:     make(chan struct{}),
	}
	if cfg.Self.AppID != "" {
		if cfg.Self.Address == "" {
			return nil, errors.New("sqlite name resolution: this sidecar's address is empty: set DAPR_HOST_IP or the host address flag")
		}
		if cfg.Self.InternalPort <= 0 {
			return nil, errors.New("sqlite name resolution: this sidecar's internal gRPC port is not set")
		}
		r.addr = net.JoinHostPort(cfg.Self.Address, strconv.Itoa(cfg.Self.InternalPort))
	}

	dsn, err := opts.dsn()
	if err != nil {
		return nil, fmt.Errorf("sqlite name resolution: %w", err)
	}
	if opts.inMemory() {
		log.Warn("name resolution uses an in-memory SQLite database: other sidecars cannot find this one")
	} else {
		log.Info("sqlite name resolution", "path", opts.path(), "update_interval", opts.UpdateInterval)
	}
	r.db, err = sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite name resolution: open %s: %w", opts.path(), err)
	}

	// Migrations wait for other starting sidecars, so allow more than one
	// operation's timeout.
	ctx, cancel := context.WithTimeout(context.Background(), 10*opts.Timeout)
	defer cancel()
	if err := migrate(ctx, r.db, &r.opts); err != nil {
		r.db.Close()
		return nil, fmt.Errorf("sqlite name resolution: prepare tables in %s: %w", opts.path(), err)
	}
	if r.addr != "" {
		if err := r.register(ctx); err != nil {
			r.db.Close()
			return nil, fmt.Errorf("sqlite name resolution: register %s (%s) in %s: %w", cfg.Self.AppID, r.addr, opts.path(), err)
		}
	}
	return r, nil
}

// Resolve returns the next live instance of req.AppID, round robin.
func (r *Resolver) Resolve(ctx context.Context, req resolve.Request) (string, error) {
	addrs, err := r.List(ctx, req)
	if err != nil {
		return "", err
	}
	r.mu.Lock()
	n := r.counters[req]
	r.counters[req] = n + 1
	r.mu.Unlock()
	return addrs[n%uint64(len(addrs))], nil
}

// List returns the addresses of every live instance of req.AppID, sorted.
func (r *Resolver) List(ctx context.Context, req resolve.Request) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
	defer cancel()

	q := fmt.Sprintf(`SELECT address FROM %s
WHERE app_id = ? AND unixepoch(CURRENT_TIMESTAMP) - last_update < ?`, r.opts.TableName)
	args := []any{req.AppID, int64(r.opts.UpdateInterval.Seconds())}
	if req.Namespace != "" {
		q += " AND namespace IN (?, '')"
		args = append(args, req.Namespace)
	}
	q += " ORDER BY address"

	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("look up app %q in %s: %w", req.AppID, r.opts.path(), err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var a string
		if err := rows.Scan(&a); err != nil {
			return nil, fmt.Errorf("look up app %q: %w", req.AppID, err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("look up app %q: %w", req.AppID, err)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("app %q: no sidecar registered in %s with a heartbeat in the last %v; check that the app's sidecar is running and uses the same connectionString: %w",
			req.AppID, r.opts.path(), r.opts.UpdateInterval, resolve.ErrNotFound)
	}
	return out, nil
}

// Run renews this sidecar's row (the heartbeat, every updateInterval
// minus timeout) and deletes stale rows (every cleanupInterval) until ctx
// ends or Close is called. The binary's root runs it as a task; without it
// the registration goes stale after updateInterval. Failures are logged
// and retried at the next tick; Run returns nil.
func (r *Resolver) Run(ctx context.Context) error {
	r.runMu.Lock()
	if r.closed {
		r.runMu.Unlock()
		return nil
	}
	r.wg.Add(1)
	r.runMu.Unlock()
	defer r.wg.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		select {
		case <-r.stop:
			cancel()
		case <-ctx.Done():
		}
	})
	if r.addr != "" {
		wg.Go(func() { r.heartbeat(ctx) })
	}
	if r.opts.CleanupInterval > 0 {
		wg.Go(func() { r.cleanupLoop(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	return nil
}

// Close stops Run, deletes this sidecar's row and closes the file.
func (r *Resolver) Close() error {
	r.closeOnce.Do(func() {
		r.runMu.Lock()
		r.closed = true
		r.runMu.Unlock()
		close(r.stop)
		r.wg.Wait()
		var errs []error
		if r.addr != "" {
			ctx, cancel := context.WithTimeout(context.Background(), r.opts.Timeout)
			if err := r.deregister(ctx); err != nil {
				errs = append(errs, fmt.Errorf("sqlite name resolution: deregister %s: %w", r.addr, err))
			}
			cancel()
		}
		if err := r.db.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sqlite name resolution: close: %w", err))
		}
		r.closeErr = errors.Join(errs...)
	})
	return r.closeErr
}

// newRegistrationID returns a random UUIDv4 string, the form Dapr uses.
func newRegistrationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
