package pubsub

import (
	"context"
	"time"
)

// Backlogger is an optional PubSub behaviour: Backlog asks the broker how
// many messages of topic wait for this instance's consumer (the consumer
// group or durable consumer its subscriptions use, named by consumerID or
// the app ID), so an autoscaler can see work that no subscriber holds yet.
// The figures are the broker's, shared by every subscriber of the group,
// not this instance's alone. A broker without it is reported with the
// sidecar's own in-flight count only.
type Backlogger interface {
	Backlog(ctx context.Context, topic string) (Backlog, error)
}

// Backlog is what the broker holds for a topic's consumer.
type Backlog struct {
	// Undelivered counts messages not yet handed to any consumer of the
	// group (Redis Streams: the group's lag; JetStream: NumPending).
	Undelivered int64
	// Unacked counts messages handed out but not acknowledged (Redis
	// Streams: the group's pending entries; JetStream: NumAckPending).
	Unacked int64
	// Oldest is when the oldest message not yet acknowledged was
	// published; zero when there is none.
	Oldest time.Time
}

// Total is every message the consumer still has to settle.
func (b Backlog) Total() int64 { return b.Undelivered + b.Unacked }
