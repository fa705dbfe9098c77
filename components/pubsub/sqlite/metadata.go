package sqlite

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// Defaults of the component's metadata.
const (
	defaultProcessingTimeout = 60 * time.Second
	defaultPollInterval      = 100 * time.Millisecond
	defaultRetention         = 24 * time.Hour
	defaultCleanupInterval   = 5 * time.Minute
	defaultBusyTimeout       = 5 * time.Second
	defaultTimeout           = 20 * time.Second
)

// Where a consumer group starts on a topic it has never subscribed to.
const (
	startEarliest = "earliest" // every message the file still holds
	startLatest   = "latest"   // only messages published from now on
)

// config is the component's metadata.
type config struct {
	connectionString  string        // connectionString: a file path or file: URI
	consumerID        string        // consumerID (default: app ID)
	startFrom         string        // startFrom: earliest (default) or latest
	processingTimeout time.Duration // processingTimeout: lease of a delivered message
	pollInterval      time.Duration // pollInterval: how often other processes' messages are looked for
	retention         time.Duration // retention: how long delivered messages are kept
	cleanupInterval   time.Duration // cleanupInterval: how often old messages are removed
	busyTimeout       time.Duration // busyTimeout: wait for another process's write (for its turn, then for SQLite's lock)
	timeout           time.Duration // timeout: bound of one database operation
	concurrency       int           // concurrency: default handlers per subscription
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		connectionString: strings.TrimSpace(md.String("connectionString", "")),
		consumerID:       md.String(pubsub.MetadataConsumerID, md.AppID),
		startFrom:        strings.ToLower(md.String("startFrom", startEarliest)),
	}
	if c.connectionString == "" {
		return c, fmt.Errorf("component %q: metadata connectionString is required: the path of the database file every sidecar on this host shares, e.g. \"/home/me/.tandem/pubsub.db\"", md.Name)
	}
	if inMemory(c.connectionString) {
		return c, fmt.Errorf("component %q: connectionString %q is an in-memory database, which other sidecars cannot see; use a file path, or the pubsub.in-memory type", md.Name, c.connectionString)
	}
	if c.consumerID == "" {
		return c, fmt.Errorf("component %q: metadata %q is empty and there is no app ID; set consumerID", md.Name, pubsub.MetadataConsumerID)
	}
	if err := checkStartFrom(md.Name, c.startFrom); err != nil {
		return c, err
	}
	durations := []struct {
		name string
		dst  *time.Duration
		def  time.Duration
		min  time.Duration
	}{
		{"processingTimeout", &c.processingTimeout, defaultProcessingTimeout, 100 * time.Millisecond},
		{"pollInterval", &c.pollInterval, defaultPollInterval, time.Millisecond},
		{"retention", &c.retention, defaultRetention, 0},
		{"cleanupInterval", &c.cleanupInterval, defaultCleanupInterval, 10 * time.Millisecond},
		{"busyTimeout", &c.busyTimeout, defaultBusyTimeout, 0},
		{"timeout", &c.timeout, defaultTimeout, 100 * time.Millisecond},
	}
	for _, d := range durations {
		v, err := md.Duration(d.name, d.def)
		if err != nil {
			return c, err
		}
		if v < d.min {
			return c, fmt.Errorf("component %q: metadata %q: %s is too short (at least %s)", md.Name, d.name, v, d.min)
		}
		*d.dst = v
	}
	var err error
	if c.concurrency, err = md.Int("concurrency", pubsub.DefaultConcurrency); err != nil {
		return c, err
	}
	if c.concurrency < 1 {
		return c, fmt.Errorf("component %q: metadata concurrency must be at least 1", md.Name)
	}
	return c, nil
}

func checkStartFrom(component, v string) error {
	if v != startEarliest && v != startLatest {
		return fmt.Errorf("component %q: metadata startFrom %q: use %q or %q", component, v, startEarliest, startLatest)
	}
	return nil
}

func hasPragma(qs url.Values, name string) bool {
	for _, p := range qs["_pragma"] {
		if strings.HasPrefix(strings.ToLower(strings.TrimSpace(p)), name) {
			return true
		}
	}
	return false
}

func inMemory(cs string) bool {
	lc := strings.ToLower(cs)
	return strings.HasPrefix(lc, ":memory:") || strings.HasPrefix(lc, "file::memory:") || strings.Contains(lc, "mode=memory")
}

// path is the database file's path as SQLite opens it: connectionString
// without its options, a file: URI decoded (the lock files of the write
// turn go beside it).
func (c config) path() string {
	cs := c.connectionString
	if i := strings.IndexAny(cs, "?#"); i >= 0 {
		cs = cs[:i]
	}
	if !strings.HasPrefix(strings.ToLower(cs), "file:") {
		return cs
	}
	cs = cs[len("file:"):]
	if rest, ok := strings.CutPrefix(cs, "//"); ok {
		// file://host/path: SQLite accepts only an empty host or localhost.
		if i := strings.IndexByte(rest, '/'); i >= 0 {
			cs = rest[i:]
		} else {
			cs = ""
		}
	}
	if u, err := url.PathUnescape(cs); err == nil {
		cs = u
	}
	return cs
}

// dsn builds the driver's connection string: immediate write transactions
// (so two processes never deadlock upgrading a read lock), WAL (readers do
// not block the writer), and the busy timeout from metadata, which the
// connection string must not set itself.
func (c config) dsn() (string, error) {
	cs := c.connectionString
	qs := url.Values{}
	if i := strings.IndexByte(cs, '?'); i >= 0 {
		var err error
		if qs, err = url.ParseQuery(cs[i+1:]); err != nil {
			return "", fmt.Errorf("connectionString: malformed options after '?': %w", err)
		}
		cs = cs[:i]
	}
	if qs.Get("mode") == "ro" || qs.Get("immutable") == "1" {
		return "", fmt.Errorf("connectionString: a read-only database cannot hold messages; remove mode=ro or immutable=1")
	}
	for _, p := range qs["_pragma"] {
		p = strings.ToLower(p)
		for _, forbidden := range []struct{ prefix, use string }{
			{"busy_timeout", "the busyTimeout metadata property"},
			{"journal_mode", "nothing: the broker needs WAL"},
		} {
			if strings.HasPrefix(p, forbidden.prefix) {
				return "", fmt.Errorf("connectionString: _pragma=%s is not allowed; use %s", forbidden.prefix, forbidden.use)
			}
		}
	}
	qs.Set("_txlock", "immediate")
	qs.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.busyTimeout.Milliseconds()))
	qs.Add("_pragma", "journal_mode(WAL)")
	if !hasPragma(qs, "synchronous") {
		// WAL + NORMAL: a commit survives the process crashing, not the
		// machine losing power; it saves an fsync per message. Put
		// _pragma=synchronous(FULL) in the connection string for the latter.
		qs.Add("_pragma", "synchronous(NORMAL)")
	}
	if !strings.HasPrefix(strings.ToLower(cs), "file:") {
		cs = "file:" + cs
	}
	return cs + "?" + qs.Encode(), nil
}
