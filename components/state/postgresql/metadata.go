package postgresql

import (
	"fmt"
	"strings"
	"time"

	"github.com/tandemrun/tandem/components"
)

// Dapr's defaults for state.postgresql (both versions).
const (
	defaultTableName         = "state" // v1's tableName; v2's name after tablePrefix
	defaultMetadataTableName = "dapr_metadata"
	defaultTimeout           = 20 * time.Second
	defaultCleanupInterval   = time.Hour
)

type config struct {
	connectionString string
	// tableName is v1's tableName, or v2's tablePrefix + "state".
	tableName         string
	tablePrefix       string // v2 only
	metadataTableName string
	timeout           time.Duration
	cleanupInterval   time.Duration // <= 0: disabled
}

// parseConfig reads the metadata of version "v1" or "v2". The versions
// differ in the table name only: v1 has tableName, v2 has tablePrefix
// (Dapr's v2 ignores tableName, and so does this, with a warning from the
// caller).
func parseConfig(md components.Metadata, version string) (config, error) {
	// A store of one layout must never serve a component written for the
	// other: daprd would not find its data. The registry picks by version
	// (Versions); this guards other callers.
	if v := strings.ToLower(strings.TrimSpace(md.Version)); v != "" && v != version {
		return config{}, fmt.Errorf("component %q: spec.version %q cannot be served by the %s store: build stores with postgresql.Versions, which picks by spec.version", md.Name, md.Version, version)
	}
	c := config{
		connectionString:  md.String("connectionString", ""),
		tableName:         md.String("tableName", defaultTableName),
		metadataTableName: md.String("metadataTableName", defaultMetadataTableName),
	}
	tableField, tableValue := "tableName", c.tableName
	if version == "v2" {
		c.tablePrefix = md.String("tablePrefix", "")
		c.tableName = c.tablePrefix + defaultTableName
		tableField, tableValue = "tablePrefix", c.tablePrefix
	}
	if c.connectionString == "" {
		return c, fmt.Errorf("component %q: metadata connectionString is required, e.g. \"host=localhost user=postgres dbname=dapr\" or a postgres:// URL", md.Name)
	}
	for _, id := range []struct{ field, value, table string }{
		{tableField, tableValue, c.tableName},
		{"metadataTableName", c.metadataTableName, c.metadataTableName},
	} {
		if !validIdentifier(id.table) {
			return c, fmt.Errorf("component %q: metadata %s %q: use letters, digits, _ and an optional schema. prefix", md.Name, id.field, id.value)
		}
	}
	var err error
	name := "timeout"
	if _, ok := md.Get(name); !ok {
		name = "timeoutInSeconds"
	}
	if c.timeout, err = md.Duration(name, defaultTimeout); err != nil {
		return c, err
	}
	if c.timeout < time.Second {
		return c, fmt.Errorf("component %q: metadata timeout %v: must be at least 1s", md.Name, c.timeout)
	}
	name = "cleanupInterval"
	if _, ok := md.Get(name); !ok {
		name = "cleanupIntervalInSeconds"
	}
	if c.cleanupInterval, err = md.Duration(name, defaultCleanupInterval); err != nil {
		return c, err
	}
	return c, nil
}

// validIdentifier accepts "table" and "schema.table" made of letters, digits
// and underscores: names are spliced into SQL, so nothing else gets in.
func validIdentifier(v string) bool {
	if v == "" || v[0] == '.' || v[len(v)-1] == '.' {
		return false
	}
	dots := 0
	for _, r := range v {
		switch {
		case r == '.':
			dots++
		case r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z':
		default:
			return false
		}
	}
	return dots <= 1
}
