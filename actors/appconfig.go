package actors

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Defaults daprd applies when the app does not say.
const (
	DefaultIdleTimeout        = 60 * time.Minute
	DefaultDrainCallTimeout   = 2 * time.Second
	DefaultReentrancyMaxDepth = 32
)

// AppConfig is what an app answers at GET /dapr/config. The SDKs send
// "entities": null and empty strings for durations they leave unset.
type AppConfig struct {
	Entities                []string         `json:"entities"`
	ActorIdleTimeout        string           `json:"actorIdleTimeout"`
	DrainOngoingCallTimeout string           `json:"drainOngoingCallTimeout"`
	DrainRebalancedActors   *bool            `json:"drainRebalancedActors"`
	Reentrancy              ReentrancyConfig `json:"reentrancy"`
	EntitiesConfig          []EntityConfig   `json:"entitiesConfig"`
	// RemindersStoragePartitions splits each type's reminders in the
	// actor state store over this many keys (Dapr's layout); 0 keeps
	// them in one.
	RemindersStoragePartitions int `json:"remindersStoragePartitions"`
}

// EntityConfig overrides AppConfig for some actor types.
type EntityConfig struct {
	Entities                []string         `json:"entities"`
	ActorIdleTimeout        string           `json:"actorIdleTimeout"`
	DrainOngoingCallTimeout string           `json:"drainOngoingCallTimeout"`
	DrainRebalancedActors   *bool            `json:"drainRebalancedActors"`
	Reentrancy              ReentrancyConfig `json:"reentrancy"`
	// RemindersStoragePartitions, when set, overrides AppConfig's.
	RemindersStoragePartitions *int `json:"remindersStoragePartitions"`
}

// ReentrancyConfig turns on reentrancy for a type.
type ReentrancyConfig struct {
	Enabled       bool `json:"enabled"`
	MaxStackDepth *int `json:"maxStackDepth,omitempty"`
}

// TypeConfig is the effective configuration of one hosted actor type.
type TypeConfig struct {
	IdleTimeout      time.Duration
	DrainCallTimeout time.Duration
	DrainRebalanced  bool
	Reentrant        bool
	MaxStackDepth    int
	// RemindersPartitions is how many keys the type's reminders are
	// split over in the actor state store (0: one key).
	RemindersPartitions int
}

// ParseAppConfig decodes /dapr/config and returns the hosted types with
// their effective configuration. Invalid durations fall back to the
// defaults (as daprd does, with a warning each, returned in warnings).
func ParseAppConfig(body []byte) (types map[string]TypeConfig, warnings []string, err error) {
	return ParseAppConfigWithin(body, 0, nil)
}

// ParseAppConfigWithin is ParseAppConfig for a sidecar whose placement
// rounds are bounded by disseminate (--actors-disseminate-timeout): drain
// timeouts that do not fit in it are clamped (ClampDrainTimeout, which
// logs to log) as daprd does. disseminate <= 0 clamps nothing.
func ParseAppConfigWithin(body []byte, disseminate time.Duration, log *slog.Logger) (types map[string]TypeConfig, warnings []string, err error) {
	_, types, warnings, err = parseAppConfig(body, disseminate, log)
	return types, warnings, err
}

// parseAppConfig is ParseAppConfigWithin that also returns the app-wide
// configuration (before entitiesConfig's overrides): daprd drains the
// calls in flight by its drainOngoingCallTimeout and
// drainRebalancedActors alone when its placement stream drops.
func parseAppConfig(body []byte, disseminate time.Duration, log *slog.Logger) (base TypeConfig, types map[string]TypeConfig, warnings []string, err error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var c AppConfig
	if len(body) > 0 {
		if err := json.Unmarshal(body, &c); err != nil {
			return TypeConfig{}, nil, nil, fmt.Errorf("decode /dapr/config: %w", err)
		}
	}
	base = TypeConfig{
		IdleTimeout: DefaultIdleTimeout, DrainCallTimeout: DefaultDrainCallTimeout, DrainRebalanced: true,
		Reentrant: c.Reentrancy.Enabled, MaxStackDepth: DefaultReentrancyMaxDepth,
		RemindersPartitions: max(c.RemindersStoragePartitions, 0),
	}
	warn := func(field, v string, def time.Duration) {
		warnings = append(warnings, fmt.Sprintf("invalid %s %q; using %s", field, v, def))
	}
	base.IdleTimeout = duration(c.ActorIdleTimeout, base.IdleTimeout, func() { warn("actorIdleTimeout", c.ActorIdleTimeout, DefaultIdleTimeout) })
	base.DrainCallTimeout = duration(c.DrainOngoingCallTimeout, base.DrainCallTimeout, func() {
		warn("drainOngoingCallTimeout", c.DrainOngoingCallTimeout, DefaultDrainCallTimeout)
	})
	if c.DrainOngoingCallTimeout != "" {
		base.DrainCallTimeout = ClampDrainTimeout(base.DrainCallTimeout, disseminate, "global config", log)
	}
	if c.DrainRebalancedActors != nil {
		base.DrainRebalanced = *c.DrainRebalancedActors
	}
	if c.Reentrancy.MaxStackDepth != nil {
		base.MaxStackDepth = *c.Reentrancy.MaxStackDepth
	}
	types = make(map[string]TypeConfig, len(c.Entities))
	for _, t := range c.Entities {
		if t != "" {
			types[t] = base
		}
	}
	for _, ec := range c.EntitiesConfig {
		tc := base
		tc.IdleTimeout = duration(ec.ActorIdleTimeout, base.IdleTimeout, func() { warn("entitiesConfig.actorIdleTimeout", ec.ActorIdleTimeout, base.IdleTimeout) })
		tc.DrainCallTimeout = duration(ec.DrainOngoingCallTimeout, base.DrainCallTimeout, func() {
			warn("entitiesConfig.drainOngoingCallTimeout", ec.DrainOngoingCallTimeout, base.DrainCallTimeout)
		})
		if ec.DrainOngoingCallTimeout != "" {
			tc.DrainCallTimeout = ClampDrainTimeout(tc.DrainCallTimeout, disseminate, "entities="+joinEntities(ec.Entities), log)
		}
		if ec.DrainRebalancedActors != nil {
			tc.DrainRebalanced = *ec.DrainRebalancedActors
		}
		tc.Reentrant = ec.Reentrancy.Enabled
		tc.MaxStackDepth = DefaultReentrancyMaxDepth
		if ec.Reentrancy.MaxStackDepth != nil {
			tc.MaxStackDepth = *ec.Reentrancy.MaxStackDepth
		}
		if ec.RemindersStoragePartitions != nil {
			tc.RemindersPartitions = max(*ec.RemindersStoragePartitions, 0)
		}
		for _, t := range ec.Entities {
			if _, hosted := types[t]; hosted {
				types[t] = tc
			}
		}
	}
	return base, types, warnings, nil
}

// joinEntities names an entitiesConfig entry's types in a log line.
func joinEntities(entities []string) string {
	if len(entities) == 0 {
		return "<none>"
	}
	return strings.Join(entities, ",")
}

func duration(s string, def time.Duration, invalid func()) time.Duration {
	if s == "" {
		return def
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		invalid()
		return def
	}
	return d
}
