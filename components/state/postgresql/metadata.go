package postgresql

import (
	"fmt"
	"time"

	"github.com/tandemrun/tandem/components"
)

// Dapr's defaults for state.postgresql v1.
const (
	defaultTableName         = "state"
	defaultMetadataTableName = "dapr_metadata"
	defaultTimeout           = 20 * time.Second
	defaultCleanupInterval   = time.Hour
)

type config struct {
	connectionString  string
	tableName         string
	metadataTableName string
	timeout           time.Duration
	cleanupInterval   time.Duration // <= 0: disabled
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		connectionString:  md.String("connectionString", ""),
		tableName:         md.String("tableName", defaultTableName),
		metadataTableName: md.String("metadataTableName", defaultMetadataTableName),
	}
	if c.connectionString == "" {
		return c, fmt.Errorf("component %q: metadata connectionString is required, e.g. \"host=localhost user=postgres dbname=dapr\" or a postgres:// URL", md.Name)
	}
	for _, id := range []struct{ field, v string }{{"tableName", c.tableName}, {"metadataTableName", c.metadataTableName}} {
		if !validIdentifier(id.v) {
			return c, fmt.Errorf("component %q: metadata %s %q: use letters, digits, _ and an optional schema. prefix", md.Name, id.field, id.v)
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
