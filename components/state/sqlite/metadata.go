package sqlite

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components"
)

// Dapr's defaults for state.sqlite.
const (
	defaultTableName         = "state"
	defaultMetadataTableName = "metadata"
	defaultTimeout           = 20 * time.Second
	defaultBusyTimeout       = 2 * time.Second
)

type config struct {
	connectionString  string
	tableName         string
	metadataTableName string
	timeout           time.Duration
	busyTimeout       time.Duration
	disableWAL        bool
	cleanupInterval   time.Duration // <= 0: no periodic cleanup (Dapr's default)
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		connectionString:  md.String("connectionString", md.String("url", "")),
		tableName:         md.String("tableName", defaultTableName),
		metadataTableName: md.String("metadataTableName", defaultMetadataTableName),
	}
	var err error
	if c.connectionString == "" {
		// daprd's words first (tools look for them), then how to fix it.
		return c, fmt.Errorf(`missing connection string (component %q): set metadata connectionString, e.g. "data.db" or ":memory:"`, md.Name)
	}
	for _, id := range []struct{ field, v string }{{"tableName", c.tableName}, {"metadataTableName", c.metadataTableName}} {
		if !validIdentifier(id.v) {
			return c, fmt.Errorf("component %q: metadata %s %q: use only letters, digits and _", md.Name, id.field, id.v)
		}
	}
	timeoutName := "timeout"
	if _, ok := md.Get("timeout"); !ok {
		timeoutName = "timeoutInSeconds"
	}
	if c.timeout, err = md.Duration(timeoutName, defaultTimeout); err != nil {
		return c, err
	}
	if c.timeout < time.Second {
		return c, fmt.Errorf("component %q: metadata timeout %v: must be at least 1s", md.Name, c.timeout)
	}
	if c.busyTimeout, err = md.Duration("busyTimeout", defaultBusyTimeout); err != nil {
		return c, err
	}
	c.busyTimeout = c.busyTimeout.Truncate(time.Millisecond)
	if c.disableWAL, err = md.Bool("disableWAL", false); err != nil {
		return c, err
	}
	cleanupName := "cleanupInterval"
	if _, ok := md.Get(cleanupName); !ok {
		cleanupName = "cleanupIntervalInSeconds"
	}
	if c.cleanupInterval, err = md.Duration(cleanupName, 0); err != nil {
		return c, err
	}
	return c, nil
}

func validIdentifier(v string) bool {
	if v == "" {
		return false
	}
	for _, r := range v {
		if !(r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (c config) inMemory() bool {
	lc := strings.ToLower(c.connectionString)
	return strings.HasPrefix(lc, ":memory:") || strings.HasPrefix(lc, "file::memory:")
}

// dsn builds the driver's connection string the way Dapr does: immediate
// transactions, busy_timeout and journal mode from metadata (and forbidden in
// the connection string), "file:" prefix.
func (c config) dsn() (string, error) {
	cs := c.connectionString
	var qs url.Values
	if i := strings.IndexByte(cs, '?'); i > 0 {
		var err error
		if qs, err = url.ParseQuery(cs[i+1:]); err != nil {
			return "", fmt.Errorf("connectionString: malformed options after '?': %w", err)
		}
		cs = cs[:i]
	}
	if qs == nil {
		qs = url.Values{}
	}
	if c.inMemory() {
		qs.Set("cache", "shared")
	}
	readOnly := qs.Get("mode") == "ro" || qs.Get("immutable") == "1"
	if qs.Get("_txlock") == "" {
		qs.Set("_txlock", "immediate")
	}
	for _, p := range qs["_pragma"] {
		p = strings.ToLower(p)
		for _, forbidden := range []struct{ prefix, use string }{
			{"busy_timeout", "the busyTimeout metadata property"},
			{"journal_mode", "the disableWAL metadata property"},
			{"foreign_keys", "nothing: it is not supported"},
		} {
			if strings.HasPrefix(p, forbidden.prefix) {
				return "", fmt.Errorf("connectionString: _pragma=%s is not allowed; use %s", forbidden.prefix, forbidden.use)
			}
		}
	}
	if c.busyTimeout > 0 {
		qs.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", c.busyTimeout.Milliseconds()))
	}
	switch {
	case c.inMemory():
		qs.Add("_pragma", "journal_mode(MEMORY)")
	case c.disableWAL || readOnly:
		qs.Add("_pragma", "journal_mode(DELETE)")
	default:
		qs.Add("_pragma", "journal_mode(WAL)")
	}
	if !strings.HasPrefix(strings.ToLower(cs), "file:") {
		cs = "file:" + cs
	}
	return cs + "?" + qs.Encode(), nil
}
