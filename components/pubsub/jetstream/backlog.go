package jetstream

import (
	"context"
	"errors"
	"fmt"

	js "github.com/nats-io/nats.go/jetstream"

	"github.com/tandemrun/tandem/components/pubsub"
)

var _ pubsub.Backlogger = (*PubSub)(nil)

// Backlog reads the topic's durable consumer (the one Subscribe makes):
// NumPending messages not yet delivered, NumAckPending delivered and not
// acked, and the time of the first message of the topic after the ack
// floor. A topic nobody subscribed to yet has no backlog.
func (p *PubSub) Backlog(ctx context.Context, topic string) (pubsub.Backlog, error) {
	var b pubsub.Backlog
	if p.isClosed() {
		return b, errors.New("jetstream backlog: component is closed or not initialised")
	}
	p.streamMu.Lock()
	stream, ok := p.subjects[topic]
	p.streamMu.Unlock()
	if !ok {
		stream = p.cfg.StreamName
	}
	durable := sanitize(p.cfg.DurableName + "-" + topic)
	cons, err := p.js.Consumer(ctx, stream, durable)
	if errors.Is(err, js.ErrConsumerNotFound) || errors.Is(err, js.ErrStreamNotFound) {
		return b, nil
	}
	if err != nil {
		return b, fmt.Errorf("jetstream backlog of %q: consumer %q on stream %q: %w", topic, durable, stream, err)
	}
	info := cons.CachedInfo()
	b.Undelivered, b.Unacked = int64(info.NumPending), int64(info.NumAckPending)
	if b.Total() == 0 {
		return b, nil
	}
	st, err := p.js.Stream(ctx, stream)
	if err != nil {
		return b, fmt.Errorf("jetstream backlog of %q: stream %q: %w", topic, stream, err)
	}
	m, err := st.GetMsg(ctx, info.AckFloor.Stream+1, js.WithGetMsgSubject(topic))
	switch {
	case errors.Is(err, js.ErrMsgNotFound):
		// Acked meanwhile.
	case err != nil:
		return b, fmt.Errorf("jetstream backlog of %q: oldest message: %w", topic, err)
	default:
		b.Oldest = m.Time
	}
	return b, nil
}
