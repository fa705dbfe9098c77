package appstream

import (
	"encoding/json"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/types/known/durationpb"
)

// appConfig is the /dapr/config body (as actors.ParseAppConfig reads it)
// that says what a stream's first message says.
type appConfig struct {
	Entities                []string    `json:"entities"`
	ActorIdleTimeout        string      `json:"actorIdleTimeout,omitempty"`
	DrainOngoingCallTimeout string      `json:"drainOngoingCallTimeout,omitempty"`
	DrainRebalancedActors   *bool       `json:"drainRebalancedActors,omitempty"`
	Reentrancy              *reentrancy `json:"reentrancy,omitempty"`
	EntitiesConfig          []appConfig `json:"entitiesConfig,omitempty"`
}

type reentrancy struct {
	Enabled       bool   `json:"enabled"`
	MaxStackDepth *int32 `json:"maxStackDepth,omitempty"`
}

// AppConfig returns the /dapr/config body equivalent to the app's first
// message on the stream: the actor runtime parses both the same way.
func AppConfig(in *runtimev1.SubscribeActorEventsRequestInitialAlpha1) []byte {
	c := appConfig{
		Entities:                in.GetEntities(),
		ActorIdleTimeout:        duration(in.GetActorIdleTimeout()),
		DrainOngoingCallTimeout: duration(in.GetDrainOngoingCallTimeout()),
		DrainRebalancedActors:   in.DrainRebalancedActors,
		Reentrancy:              reentrancyOf(in.GetReentrancy()),
	}
	for _, e := range in.GetEntitiesConfig() {
		c.EntitiesConfig = append(c.EntitiesConfig, appConfig{
			Entities:                e.GetEntities(),
			ActorIdleTimeout:        duration(e.GetActorIdleTimeout()),
			DrainOngoingCallTimeout: duration(e.GetDrainOngoingCallTimeout()),
			DrainRebalancedActors:   e.DrainRebalancedActors,
			Reentrancy:              reentrancyOf(e.GetReentrancy()),
		})
	}
	b, _ := json.Marshal(c) // plain strings, bools and ints: cannot fail
	return b
}

// duration is d as a Go duration string; unset or zero is "" (the
// default), as daprd reads it.
func duration(d *durationpb.Duration) string {
	if d == nil || d.AsDuration() == 0 {
		return ""
	}
	return d.AsDuration().String()
}

func reentrancyOf(r *runtimev1.ActorReentrancyConfig) *reentrancy {
	if r == nil {
		return nil
	}
	return &reentrancy{Enabled: r.GetEnabled(), MaxStackDepth: r.MaxStackDepth}
}
