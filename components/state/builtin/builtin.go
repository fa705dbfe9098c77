// Package builtin lists Tandem's built-in state stores by component type, for
// cmd/tandemd to register. Each constructor returns a fresh, uninitialised
// store; the runtime calls Init with the component's metadata.
package builtin

import (
	"log/slog"

	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/etcd"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/components/state/mysql"
	"github.com/tandemrun/tandem/components/state/postgresql"
	"github.com/tandemrun/tandem/components/state/redis"
	"github.com/tandemrun/tandem/components/state/sqlite"
)

// Stores returns the constructors of the built-in state stores, keyed by
// spec.type ("state.redis"…). Stores log to log, which the caller usually
// scopes with log.With("component", name) per component instead; pass nil
// to discard.
func Stores(log *slog.Logger) map[string]func() state.Store {
	m := map[string]func() state.Store{
		inmemory.Type:   inmemory.NewStore,
		sqlite.Type:     func() state.Store { return sqlite.NewStore(log) },
		redis.Type:      func() state.Store { return redis.NewStore(log) },
		postgresql.Type: func() state.Store { return postgresql.NewStore(log) },
		mysql.Type:      func() state.Store { return mysql.NewStore(log) },
		etcd.Type:       func() state.Store { return etcd.New(log) },
	}
	for t, f := range tagged(log) {
		m[t] = f
	}
	return m
}
