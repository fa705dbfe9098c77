package actors

import (
	"errors"
	"fmt"
)

// Errors callers branch on; proxy/apierr maps them to Dapr's codes.
var (
	// ErrNoPlacement: the sidecar was started without --placement-host-address.
	ErrNoPlacement = errors.New("placement service is not configured")
	// ErrMaxStackDepth: a reentrant call chain went deeper than allowed.
	ErrMaxStackDepth = errors.New("maximum stack depth exceeded")
	// ErrActorClosed: the actor was deactivated while the call waited.
	ErrActorClosed = errors.New("actor is deactivated")
	// ErrNoStateStore: no state store has actorStateStore "true".
	ErrNoStateStore = errors.New(`the state store is not configured to use the actor runtime. Have you set the - name: actorStateStore value: "true" in your state store component file?`)
	// ErrNotHosted: timers and reminders need the type hosted here.
	ErrNotHosted = errors.New("actor type is not hosted by this app")
	// ErrNoApp: the sidecar has no app to host actors.
	ErrNoApp = errors.New("app channel is not initialized")
	// ErrPlacementUnavailable: no table from placement within the bound.
	ErrPlacementUnavailable = errors.New("placement is unavailable")
)

// AppError is an actor method's failure as the app reported it: a status
// other than 200, or the X-DaprErrorResponseHeader header. The caller
// gets the app's status, headers and body.
type AppError struct {
	Status      int
	ContentType string
	Headers     map[string][]string
	Body        []byte
	// Flagged is set when the app used X-DaprErrorResponseHeader (its
	// answer is relayed as is); otherwise the status was not 200.
	Flagged bool
}

func (e *AppError) Error() string {
	return fmt.Sprintf("error from actor service: (%d) %s", e.Status, e.Body)
}
