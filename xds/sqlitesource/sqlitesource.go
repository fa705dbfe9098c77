// Package sqlitesource is the xDS server's source of apps in self-hosted
// mode: the SQLite name-resolution file every sidecar registers in (Dapr's
// nameresolution/sqlite layout: a hosts table of registration_id, address,
// app_id, namespace, last_update).
//
// It pushes: the folder of the file is watched (fsnotify), and any write to
// the database or its WAL makes it read the table again, so a sidecar that
// registers or deregisters reaches the xDS clients within milliseconds. A
// row also turns unhealthy when its heartbeat gets stale, which no write
// announces, so the table is read once a second as well.
package sqlitesource

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/tandemrun/tandem/xds"
)

// Options configure a Source.
type Options struct {
	// Path is the database file the sidecars share.
	Path string
	// Table is the hosts table ("hosts" if empty).
	Table string
	// UpdateInterval is the sidecars' heartbeat validity: a row whose
	// last_update is at least this old is unhealthy (5 s if zero, Dapr's
	// default; use the Configuration's updateInterval).
	UpdateInterval time.Duration
	// Recheck is how often the table is read without a file event, to
	// see heartbeats go stale (1 s if zero).
	Recheck time.Duration
	Log     *slog.Logger
}

// Source follows the hosts table.
type Source struct {
	o       Options
	changed chan struct{}

	mu   sync.Mutex
	apps []xds.App
}

var _ xds.Source = (*Source)(nil)

// New checks o and returns a Source; Run does the work.
func New(o Options) (*Source, error) {
	if strings.TrimSpace(o.Path) == "" {
		return nil, errors.New("xds sqlite source: the path of the name-resolution database is required (the sidecars' nameResolution connectionString)")
	}
	if o.Table == "" {
		o.Table = "hosts"
	}
	for _, c := range o.Table {
		if !(c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return nil, fmt.Errorf("xds sqlite source: table name %q: use only letters, digits and _", o.Table)
		}
	}
	if o.UpdateInterval <= 0 {
		o.UpdateInterval = 5 * time.Second
	}
	if o.Recheck <= 0 {
		o.Recheck = time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	o.Log = o.Log.With("component", "xds.sqlite")
	return &Source{o: o, changed: make(chan struct{}, 1)}, nil
}

// Apps returns the apps of the last read.
func (s *Source) Apps() []xds.App {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]xds.App, len(s.apps))
	for i, a := range s.apps {
		a.Endpoints = append([]xds.Endpoint(nil), a.Endpoints...)
		out[i] = a
	}
	return out
}

// Changed receives after the apps changed.
func (s *Source) Changed() <-chan struct{} { return s.changed }

func (s *Source) dsn() string {
	qs := url.Values{}
	qs.Add("_pragma", "busy_timeout(1000)")
	return "file:" + s.o.Path + "?" + qs.Encode()
}

// Run watches the file's folder and reads the table on every write, and
// every Recheck, until ctx ends.
func (s *Source) Run(ctx context.Context) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("xds sqlite source: watch files: %w", err)
	}
	defer w.Close()
	dir := filepath.Dir(s.o.Path)
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("xds sqlite source: watch folder %s: %w (does it exist?)", dir, err)
	}
	db, err := sql.Open("sqlite", s.dsn())
	if err != nil {
		return fmt.Errorf("xds sqlite source: open %s: %w", s.o.Path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	base := filepath.Base(s.o.Path)

	tick := time.NewTicker(s.o.Recheck)
	defer tick.Stop()
	// A file event can come before the writer's commit is visible (the
	// WAL frames land before the index in -shm is updated): read shortly
	// after the events stop, and once more a little later.
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	confirm := time.NewTimer(time.Hour)
	confirm.Stop()
	s.read(ctx, db)
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return errors.New("xds sqlite source: file watch closed")
			}
			if strings.HasPrefix(filepath.Base(ev.Name), base) && ev.Op != fsnotify.Chmod {
				settle.Reset(5 * time.Millisecond)
			}
			continue
		case err := <-w.Errors:
			s.o.Log.Warn("file watch error; the once-a-second read continues", "error", err)
			continue
		case <-settle.C:
			confirm.Reset(100 * time.Millisecond)
		case <-confirm.C:
		case <-tick.C:
		}
		s.read(ctx, db)
	}
}

func (s *Source) read(ctx context.Context, db *sql.DB) {
	apps, err := s.query(ctx, db)
	if err != nil {
		if ctx.Err() == nil && !strings.Contains(err.Error(), "no such table") {
			s.o.Log.Warn("read the name-resolution table; keeping the last apps", "path", s.o.Path, "error", err)
		}
		if !strings.Contains(err.Error(), "no such table") {
			return
		}
		apps = nil // no sidecar has created the table yet
	}
	xds.SortApps(apps)
	s.mu.Lock()
	same := xds.EqualApps(s.apps, apps)
	s.apps = apps
	s.mu.Unlock()
	if !same {
		select {
		case s.changed <- struct{}{}:
		default:
		}
	}
}

func (s *Source) query(ctx context.Context, db *sql.DB) ([]xds.App, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, fmt.Sprintf(
		`SELECT address, app_id, namespace, unixepoch(CURRENT_TIMESTAMP) - last_update < ? FROM %s`, s.o.Table),
		int64(s.o.UpdateInterval/time.Second))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	byApp := map[[2]string]*xds.App{}
	var order [][2]string
	for rows.Next() {
		var addr, appID, ns string
		var fresh bool
		if err := rows.Scan(&addr, &appID, &ns, &fresh); err != nil {
			return nil, err
		}
		if ns == "" {
			ns = "default" // Dapr's rows carry no namespace
		}
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			s.o.Log.Warn("skipping a row with a bad address", "app_id", appID, "address", addr)
			continue
		}
		port, err := strconv.ParseUint(portStr, 10, 16)
		if err != nil {
			continue
		}
		k := [2]string{ns, appID}
		a := byApp[k]
		if a == nil {
			a = &xds.App{ID: appID, Namespace: ns}
			byApp[k] = a
			order = append(order, k)
		}
		h := xds.Healthy
		if !fresh {
			h = xds.Unhealthy
		}
		a.Endpoints = append(a.Endpoints, xds.Endpoint{Host: host, Port: uint32(port), Health: h})
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	apps := make([]xds.App, 0, len(order))
	for _, k := range order {
		apps = append(apps, *byApp[k])
	}
	return apps, nil
}
