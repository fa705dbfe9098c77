package sqlite

import "time"

// MaxLockWait is the longest this instance waited for the write lock.
func MaxLockWait(p *PubSub) time.Duration { return time.Duration(p.stats.maxWait.Load()) }
