package sqlite

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tandemrun/tandem/invoke/resolve/internal/conf"
)

// Defaults, as in Dapr's nameresolution/sqlite (a name resolver wants short
// timeouts; these are lower than the SQLite state store's).
const (
	DefaultTableName         = "hosts"
	DefaultMetadataTableName = "metadata"
	DefaultUpdateInterval    = 5 * time.Second
	DefaultCleanupInterval   = time.Hour
	DefaultTimeout           = time.Second
	DefaultBusyTimeout       = 800 * time.Millisecond
)

// Options is the decoded spec.nameResolution.configuration.
type Options struct {
	// ConnectionString is a file path (relative to the working directory
	// or absolute) or a "file:" URI, optionally with a query string.
	ConnectionString string
	// UpdateInterval: a row whose last_update is at least this old is not
	// returned. Whole seconds, at least 1s more than Timeout.
	UpdateInterval time.Duration
	// Timeout bounds each database operation; at least 1s.
	Timeout time.Duration
	// BusyTimeout is SQLite's busy_timeout (wait for a lock held by
	// another process); <= 0 sets none.
	BusyTimeout       time.Duration
	TableName         string
	MetadataTableName string
	// CleanupInterval is how often stale rows are deleted (coordinated
	// through the metadata table); <= 0 disables cleanup.
	CleanupInterval time.Duration
	// DisableWAL keeps the rollback journal (for network filesystems,
	// which Dapr does not support anyway).
	DisableWAL bool
}

// ParseOptions decodes and validates the configuration map with Dapr's keys
// and aliases: connectionString (url), updateInterval, timeout
// (timeoutInSeconds), busyTimeout, tableName, metadataTableName,
// cleanupInterval (cleanupIntervalInSeconds), disableWAL.
func ParseOptions(raw map[string]any) (Options, error) {
	m := conf.Map(raw)
	var o Options
	var err error
	if o.ConnectionString, err = m.String("", "connectionString", "url"); err != nil {
		return o, err
	}
	if o.UpdateInterval, err = m.Duration(DefaultUpdateInterval, "updateInterval"); err != nil {
		return o, err
	}
	if o.Timeout, err = m.Duration(DefaultTimeout, "timeout", "timeoutInSeconds"); err != nil {
		return o, err
	}
	if o.BusyTimeout, err = m.Duration(DefaultBusyTimeout, "busyTimeout"); err != nil {
		return o, err
	}
	if o.TableName, err = m.String(DefaultTableName, "tableName"); err != nil {
		return o, err
	}
	if o.MetadataTableName, err = m.String(DefaultMetadataTableName, "metadataTableName"); err != nil {
		return o, err
	}
	if o.CleanupInterval, err = m.Duration(DefaultCleanupInterval, "cleanupInterval", "cleanupIntervalInSeconds"); err != nil {
		return o, err
	}
	if o.DisableWAL, err = m.Bool(false, "disableWAL"); err != nil {
		return o, err
	}
	return o, o.validate()
}

func (o *Options) validate() error {
	if strings.TrimSpace(o.ConnectionString) == "" {
		return errors.New(`configuration "connectionString" is required: set it to the path of the database file shared by all sidecars on this host, e.g. "/home/user/.dapr/nr.db"`)
	}
	if o.Timeout < time.Second {
		return fmt.Errorf(`configuration "timeout" is %v: it must be at least 1s`, o.Timeout)
	}
	// Heartbeats are compared in whole seconds by SQLite's unixepoch().
	if o.UpdateInterval != o.UpdateInterval.Truncate(time.Second) {
		return fmt.Errorf(`configuration "updateInterval" is %v: it must be whole seconds`, o.UpdateInterval)
	}
	if o.UpdateInterval-o.Timeout < time.Second {
		return fmt.Errorf(`configuration "updateInterval" (%v) must be at least 1s greater than "timeout" (%v)`, o.UpdateInterval, o.Timeout)
	}
	o.BusyTimeout = o.BusyTimeout.Truncate(time.Millisecond)
	if !validIdentifier(o.TableName) {
		return fmt.Errorf(`configuration "tableName" %q: use only letters, digits and "_"`, o.TableName)
	}
	if !validIdentifier(o.MetadataTableName) {
		return fmt.Errorf(`configuration "metadataTableName" %q: use only letters, digits and "_"`, o.MetadataTableName)
	}
	return nil
}

// inMemory reports whether the database would be private to the process,
// which makes cross-sidecar resolution impossible.
func (o *Options) inMemory() bool {
	lc := strings.ToLower(o.ConnectionString)
	return strings.HasPrefix(lc, ":memory:") || strings.HasPrefix(lc, "file::memory:")
}

// dsn builds the modernc.org/sqlite data source name the way Dapr does:
// a "file:" URI with _txlock=immediate, busy_timeout and journal_mode
// pragmas (WAL unless disabled), so many processes can share the file.
func (o *Options) dsn() (string, error) {
	cs := o.ConnectionString
	base, query, _ := strings.Cut(cs, "?")
	qs, err := url.ParseQuery(query)
	if err != nil {
		return "", fmt.Errorf("connectionString query %q: %w", query, err)
	}
	if o.inMemory() {
		qs.Set("cache", "shared")
	}
	readOnly := qs.Get("mode") == "ro" || qs.Get("immutable") == "1"
	if qs.Get("_txlock") == "" {
		qs.Set("_txlock", "immediate")
	}
	for _, p := range qs["_pragma"] {
		lp := strings.ToLower(p)
		for _, forbidden := range []string{"busy_timeout", "journal_mode", "foreign_keys"} {
			if strings.HasPrefix(lp, forbidden) {
				return "", fmt.Errorf("connectionString must not set _pragma=%s: use the busyTimeout and disableWAL configuration instead", forbidden)
			}
		}
	}
	if o.BusyTimeout > 0 {
		qs.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", o.BusyTimeout.Milliseconds()))
	}
	switch {
	case o.inMemory():
		qs.Add("_pragma", "journal_mode(MEMORY)")
	case o.DisableWAL || readOnly:
		qs.Add("_pragma", "journal_mode(DELETE)")
	default:
		qs.Add("_pragma", "journal_mode(WAL)")
	}
	if !strings.HasPrefix(strings.ToLower(base), "file:") {
		base = "file:" + base
	}
	return base + "?" + qs.Encode(), nil
}

// path is the database file for log and error messages.
func (o *Options) path() string {
	base, _, _ := strings.Cut(o.ConnectionString, "?")
	if len(base) >= 5 && strings.EqualFold(base[:5], "file:") {
		base = base[5:]
	}
	return base
}

func validIdentifier(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		ok := c == '_' || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
		if !ok {
			return false
		}
	}
	return true
}
