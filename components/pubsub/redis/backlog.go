package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components/pubsub"
)

var _ pubsub.Backlogger = (*PubSub)(nil)

// lagCountLimit bounds the entries counted one by one when Redis cannot
// say the group's lag (after XDEL or trimming of undelivered entries).
const lagCountLimit = 10000

// Backlog reads the consumer group's lag and pending entries (XINFO
// GROUPS) and the age of the oldest unacknowledged entry (its ID is its
// time: XPENDING's lowest ID, or the first entry after the group's last
// delivered one). A topic nobody subscribed to yet, or whose group is
// gone, has no backlog.
func (p *PubSub) Backlog(ctx context.Context, topic string) (pubsub.Backlog, error) {
	var b pubsub.Backlog
	if p.client == nil || p.life.Closed() {
		return b, errors.New("redis backlog: component is closed or not initialised")
	}
	groups, err := p.client.XInfoGroups(ctx, topic).Result()
	if err != nil {
		if strings.Contains(err.Error(), "no such key") {
			return b, nil
		}
		return b, fmt.Errorf("redis backlog of %q: %w", topic, err)
	}
	var g *goredis.XInfoGroup
	for i := range groups {
		if groups[i].Name == p.cfg.ConsumerID {
			g = &groups[i]
		}
	}
	if g == nil {
		return b, nil
	}
	b.Unacked, b.Undelivered = g.Pending, g.Lag
	if b.Undelivered < 0 {
		// Redis cannot tell (entries deleted): count what follows the
		// group's last delivered entry.
		msgs, err := p.client.XRangeN(ctx, topic, "("+g.LastDeliveredID, "+", lagCountLimit).Result()
		if err != nil {
			return b, fmt.Errorf("redis backlog of %q: count undelivered entries: %w", topic, err)
		}
		b.Undelivered = int64(len(msgs))
	}
	var oldest string
	switch {
	case b.Unacked > 0:
		pend, err := p.client.XPending(ctx, topic, p.cfg.ConsumerID).Result()
		if err != nil {
			return b, fmt.Errorf("redis backlog of %q: pending entries: %w", topic, err)
		}
		oldest = pend.Lower
	case b.Undelivered > 0:
		msgs, err := p.client.XRangeN(ctx, topic, "("+g.LastDeliveredID, "+", 1).Result()
		if err != nil {
			return b, fmt.Errorf("redis backlog of %q: first undelivered entry: %w", topic, err)
		}
		if len(msgs) > 0 {
			oldest = msgs[0].ID
		}
	}
	b.Oldest = entryTime(oldest)
	return b, nil
}

// entryTime is the time in a stream entry ID ("<unix ms>-<seq>"); zero
// for an ID that is not one.
func entryTime(id string) time.Time {
	ms, _, ok := strings.Cut(id, "-")
	if !ok {
		return time.Time{}
	}
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}
	}
	return time.UnixMilli(n)
}
