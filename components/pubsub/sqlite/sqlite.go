// Package sqlite is the pubsub.sqlite broker: one SQLite file (pure Go,
// modernc.org/sqlite, WAL) shared by every sidecar on a host, so apps
// started separately (`tandem run` in two terminals) publish to each other
// with no server to install. It is the default pub/sub of `tandem init`.
//
// Model. Publish inserts a row into pubsub_messages and returns once it is
// committed. Each consumer group (metadata consumerID, default the app ID:
// instances of one app share the work, different apps each get every
// message) has, per topic, a cursor: the last message it took over. A
// subscriber polls (pollInterval, and at once when a Publish of the same
// component instance wakes it); when there is work it, in one immediate
// transaction, copies the messages after the cursor into
// pubsub_deliveries, advances the cursor, and leases as many ready
// deliveries as it has free handler slots (lease: processingTimeout,
// renewed while the handler runs). A delivery is deleted when the handler
// returned nil; a handler error releases it for redelivery after a short
// backoff. A killed subscriber's leases expire and another instance of the
// group takes the messages over.
//
// The instances on a file (one per sidecar, each its own connections) take
// turns at SQLite's single write lock (turn.go): an instance with writes
// always queued keeps it for at most a few milliseconds while others wait,
// so the instances of a group share its messages under load too.
//
// A group that subscribes to a topic for the first time starts from the
// oldest message the file still holds (startFrom: earliest, like Dapr's
// Redis Streams groups) or from the next one (startFrom: latest).
//
// Messages published with ttlInSeconds are not delivered after they
// expire. Every cleanupInterval, expired messages and messages older than
// retention that every group of their topic has handled are deleted.
package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
	"github.com/tandemrun/tandem/internal/sqlitebusy"
)

// Type is the component type.
const Type = "pubsub.sqlite"

var _ pubsub.PubSub = (*PubSub)(nil)

// PubSub is the SQLite broker.
type PubSub struct {
	log   *slog.Logger
	cfg   config
	db    *sql.DB
	st    *stmts
	owner string // lease owner token of this instance

	writes     chan writeReq // to the writer goroutine (writer.go)
	writerStop chan struct{}
	writerDone chan struct{}
	turn       *turn // nil: writes use SQLite's lock alone
	stats      writeStats

	life pubsub.Lifecycle                      // subscriptions and background loops
	mu   sync.Mutex                            // db, st, turn (set by Init) and subs
	subs map[string]map[*subscription]struct{} // topic -> running subscriptions, for wake-ups
}

// New returns an uninitialised broker; log may be nil.
func New(log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{
		log:        log,
		subs:       map[string]map[*subscription]struct{}{},
		writes:     make(chan writeReq),
		writerStop: make(chan struct{}),
		writerDone: make(chan struct{}),
	}
}

// Init opens (creating if needed) the database file and its tables.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	cfg, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	dsn, err := cfg.dsn()
	if err != nil {
		return components.Permanent(fmt.Errorf("component %q: %w", md.Name, err))
	}
	if md.Name != "" {
		p.log = p.log.With("component", md.Name)
	}
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return fmt.Errorf("component %q: open sqlite: %w", md.Name, err)
	}
	// A few connections: readers (the pollers' checks) run beside the
	// writer in WAL mode; writes are serialised by writeMu anyway.
	db.SetMaxOpenConns(4)
	db.SetMaxIdleConns(4)
	cctx, cancel := context.WithTimeout(ctx, cfg.timeout)
	defer cancel()
	// Sidecars starting together on one file race for the lock that WAL
	// mode and the schema need; the losers try again.
	if err := sqlitebusy.Retry(cctx, func() error { return migrate(cctx, db) }); err != nil {
		_ = db.Close()
		return fmt.Errorf("component %q: prepare tables in %s: %w (check that the folder exists and is writable)", md.Name, cfg.connectionString, err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	p.owner = hex.EncodeToString(b)
	tn, err := openTurn(cfg.path())
	switch {
	case errors.Is(err, errNoFlock):
		p.log.Debug("writers on this platform share the database file through SQLite's lock alone", "error", err)
	case err != nil:
		p.log.Warn("cannot share the write lock fairly with other sidecars; under load one of them may wait long for it (check that the database's folder is writable)",
			"file", cfg.path(), "error", err)
	}
	// Init and Close agree through p.mu: Close reads db after it began, so
	// either Init sees it closing here or Close finds db set and stops the
	// writer. The loops, once Close began, do not start.
	p.mu.Lock()
	if p.life.Closed() {
		p.mu.Unlock()
		tn.close()
		_ = db.Close()
		return errors.New("sqlite pubsub: init after close")
	}
	p.cfg, p.db, p.st, p.turn = cfg, db, &stmts{db: db}, tn
	p.mu.Unlock()
	go p.writer()
	p.life.Go(context.Background(), p.renewLoop)
	p.life.Go(context.Background(), p.cleanupLoop)
	p.log.Debug("sqlite pub/sub ready", "file", cfg.connectionString, "consumer_id", cfg.consumerID)
	return nil
}

// Features: metadata and content type travel with the message, the file
// keeps messages for absent groups, groups share, TTLs are enforced.
func (p *PubSub) Features() []pubsub.Feature {
	return []pubsub.Feature{pubsub.FeatureMessageMetadata, pubsub.FeatureDurable, pubsub.FeatureConsumerGroups, pubsub.FeatureMessageTTL}
}

// ready returns the database, or an error once closed or before Init.
func (p *PubSub) ready(op string) (*sql.DB, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.life.Closed() || p.db == nil {
		return nil, fmt.Errorf("sqlite %s: component is closed or not initialised", op)
	}
	return p.db, nil
}

// Publish stores the message; it returns nil once the row is committed.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if _, err := p.ready("publish"); err != nil {
		return err
	}
	if req.Topic == "" {
		return errors.New("sqlite publish: missing topic")
	}
	now := time.Now()
	var expires sql.NullInt64
	if v, ok := req.Metadata[pubsub.MetadataTTLInSeconds]; ok && strings.TrimSpace(v) != "" {
		ttl, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || ttl < 0 {
			return fmt.Errorf("sqlite publish to %q: metadata %s %q is not a whole number of seconds", req.Topic, pubsub.MetadataTTLInSeconds, v)
		}
		expires = sql.NullInt64{Int64: now.Add(time.Duration(ttl) * time.Second).UnixMilli(), Valid: true}
	}
	var md sql.NullString
	if len(req.Metadata) > 0 {
		b, err := json.Marshal(req.Metadata)
		if err != nil {
			return fmt.Errorf("sqlite publish to %q: encode metadata: %w", req.Topic, err)
		}
		md = sql.NullString{String: string(b), Valid: true}
	}
	data := req.Data
	if data == nil {
		data = []byte{}
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.timeout)
	defer cancel()
	err := p.write(ctx, func(ctx context.Context, tx *sql.Tx) error {
		_, err := p.st.exec(ctx, tx, `INSERT INTO pubsub_messages (topic, data, content_type, metadata, published_at, expires_at)
			VALUES (?, ?, ?, ?, ?, ?)`, req.Topic, data, req.ContentType, md, now.UnixMilli(), expires)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite publish to %q: %w", req.Topic, err)
	}
	p.wake(req.Topic)
	return nil
}

// wake tells this instance's subscriptions of topic to look now.
func (p *PubSub) wake(topic string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for s := range p.subs[topic] {
		s.signal(s.wakeCh)
	}
}

// Subscribe registers the consumer group on the topic (its cursor) and
// starts pulling.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	db, err := p.ready("subscribe")
	if err != nil {
		return err
	}
	if req.Topic == "" {
		return errors.New("sqlite subscribe: missing topic")
	}
	group := p.cfg.consumerID
	if v := req.Metadata[pubsub.MetadataConsumerID]; v != "" {
		group = v
	}
	startFrom := p.cfg.startFrom
	if v := strings.ToLower(req.Metadata["startFrom"]); v != "" {
		if err := checkStartFrom("subscription", v); err != nil {
			return err
		}
		startFrom = v
	}
	s := &subscription{
		p:           p,
		db:          db,
		topic:       req.Topic,
		group:       group,
		startFrom:   startFrom,
		concurrency: pubsub.Concurrency(req, p.cfg.concurrency),
		wakeCh:      make(chan struct{}, 1),
		freedCh:     make(chan struct{}, 1),
		log:         p.log.With("topic", req.Topic, "consumer_id", group),
	}
	cctx, cancel := context.WithTimeout(ctx, p.cfg.timeout)
	err = p.write(cctx, s.ensureCursor)
	cancel()
	if err != nil {
		return fmt.Errorf("sqlite subscribe to %q: register consumer group %q: %w", req.Topic, group, err)
	}

	p.mu.Lock()
	if p.subs[req.Topic] == nil {
		p.subs[req.Topic] = map[*subscription]struct{}{}
	}
	p.subs[req.Topic][s] = struct{}{}
	p.mu.Unlock()
	ok := p.life.Go(ctx, func(ctx context.Context) {
		s.d = pubsub.NewDispatcher(ctx, h, pubsub.DispatcherConfig{
			Concurrency: s.concurrency,
			OrderingKey: req.OrderingKey,
			Log:         s.log,
		})
		s.run(ctx)
		s.d.Wait()
		p.unsubscribe(s)
	})
	if !ok {
		p.unsubscribe(s)
		return errors.New("sqlite subscribe: component is closed")
	}
	return nil
}

// unsubscribe removes s from its topic's running subscriptions.
func (p *PubSub) unsubscribe(s *subscription) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.subs[s.topic], s)
	if len(p.subs[s.topic]) == 0 {
		delete(p.subs, s.topic)
	}
}

// Close stops pulling, waits for running handlers (their results are still
// settled) and closes the database. Leases of crashed handlers, if any,
// expire on their own.
func (p *PubSub) Close() error {
	if !p.life.Close() {
		return nil
	}
	p.mu.Lock()
	db := p.db
	p.mu.Unlock()
	if db == nil {
		return nil
	}
	close(p.writerStop)
	<-p.writerDone
	p.turn.close()
	p.st.close()
	if err := db.Close(); err != nil {
		return fmt.Errorf("sqlite pubsub: close database: %w", err)
	}
	return nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
