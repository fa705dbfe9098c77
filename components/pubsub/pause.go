package pubsub

import (
	"context"
	"errors"
)

// Pauser is an optional PubSub behaviour: Pause stops the broker handing
// out new messages to every subscription of the instance, while handlers
// already running finish and are acknowledged. The sidecar pauses a broker
// before it stops the subscriptions for good (daprd's pause-and-drain
// shutdown), so nothing new is pulled while it drains.
type Pauser interface {
	Pause(ctx context.Context) error
}

// ErrPauseUnsupported is what Pause returns when the broker behind the
// instance cannot pause; the sidecar then stops the subscriptions without
// pausing first.
var ErrPauseUnsupported = errors.New("the broker does not support pausing")
