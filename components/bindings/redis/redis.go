// Package redis is the bindings.redis output binding: string keys on a
// Redis server, with Dapr's operations create (SET the data; metadata ttl
// or ttlInSeconds sets an expiry), get (the value; empty answer for a
// missing key; metadata delete=true reads and deletes), delete and
// increment (INCR), each on the key named by the request's key metadata.
package redis

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/internal/redisconn"
)

// Type is the component's spec.type.
const Type = "bindings.redis"

// OperationIncrement is Dapr's increment operation.
const OperationIncrement = "increment"

// config is the component's connection metadata, with Dapr's names and
// defaults.
type config = redisconn.Config

func parseConfig(md components.Metadata) (config, error) {
	return redisconn.Parse(md.Name, md)
}

// Binding is a Redis output binding.
type Binding struct {
	mu     sync.RWMutex
	client goredis.UniversalClient
}

// New returns an uninitialised Redis binding.
func New() *Binding { return &Binding{} }

// Init connects to the server.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	c, err := parseConfig(md)
	if err != nil {
		return components.Permanent(err)
	}
	client, err := c.Connect(ctx, md.Name)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.client = client
	b.mu.Unlock()
	return nil
}

// Operations lists create, delete, get and increment.
func (b *Binding) Operations() []string {
	return []string{bindings.OperationCreate, bindings.OperationDelete, bindings.OperationGet, OperationIncrement}
}

// ttlOf reads the ttl (or ttlInSeconds) request metadata: a Go duration
// or a number of seconds.
func ttlOf(md map[string]string) (time.Duration, bool, error) {
	v := md["ttl"]
	if v == "" {
		v = md["ttlInSeconds"]
	}
	if v == "" {
		return 0, false, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return max(d, 0), true, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("ttl value must be a valid integer: actual is '%s'", v)
	}
	if n <= 0 {
		return 0, false, fmt.Errorf("ttl value must be higher than zero: actual is '%d'", n)
	}
	if n > math.MaxInt64/int64(time.Second) {
		return math.MaxInt64, true, nil
	}
	return time.Duration(n) * time.Second, true, nil
}

// Invoke runs one operation.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	if b.client == nil {
		return nil, errors.New("redis binding is not initialised or closed")
	}
	key := req.Metadata["key"]
	if key == "" {
		return nil, errors.New("redis binding: missing key in request metadata")
	}
	switch req.Operation {
	case bindings.OperationDelete:
		return nil, b.client.Del(ctx, key).Err()
	case bindings.OperationGet:
		var v string
		var err error
		if req.Metadata["delete"] == "true" {
			v, err = b.client.GetDel(ctx, key).Result()
		} else {
			v, err = b.client.Get(ctx, key).Result()
		}
		if errors.Is(err, goredis.Nil) {
			return &bindings.InvokeResponse{}, nil
		}
		if err != nil {
			return nil, err
		}
		return &bindings.InvokeResponse{Data: []byte(v)}, nil
	case bindings.OperationCreate, OperationIncrement:
		ttl, hasTTL, err := ttlOf(req.Metadata)
		if err != nil {
			return nil, err
		}
		if req.Operation == bindings.OperationCreate {
			err = b.client.Set(ctx, key, req.Data, 0).Err()
		} else {
			err = b.client.Incr(ctx, key).Err()
		}
		if err != nil {
			return nil, err
		}
		if hasTTL {
			if err := b.client.Expire(ctx, key, ttl.Truncate(time.Second)).Err(); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	return nil, fmt.Errorf("invalid operation type: %s", req.Operation)
}

// Close closes the connection pool; it may be called more than once.
func (b *Binding) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.client == nil {
		return nil
	}
	err := b.client.Close()
	b.client = nil
	return err
}
