// Package pahotoken waits on the Eclipse Paho MQTT client's asynchronous
// tokens with a context and a time bound, and connects clients so that a
// connection given up on is closed rather than left behind. The MQTT
// binding and the MQTT pub/sub share it.
package pahotoken

import (
	"context"
	"fmt"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Wait waits for t, bounded by ctx and by limit.
func Wait(ctx context.Context, t mqtt.Token, limit time.Duration) error {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return fmt.Errorf("no answer from the broker in %s", limit)
	}
}

// Connect connects c, bounded by ctx and limit. When that fails or ctx ends
// first, a connection still being made is let finish (at most limit) and
// closed, so no client outlives the call that gave up on it.
func Connect(ctx context.Context, c mqtt.Client, limit time.Duration) error {
	t := c.Connect()
	err := Wait(ctx, t, limit)
	if err != nil {
		t.WaitTimeout(limit)
		c.Disconnect(0)
	}
	return err
}
