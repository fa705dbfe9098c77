// Package inmemory is the state.in-memory store: an embedded, non-persistent
// store with ETags, TTLs, atomic transactions, native bulk operations,
// DeleteWithPrefix and KeysLike. Like Dapr's state.in-memory it has no query
// API. It is Tandem's default store and the reference the other backends are
// tested against.
package inmemory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

// Type is the component type this store registers as.
const Type = "state.in-memory"

// cleanupEvery is how often expired items are removed; reads never see them
// anyway.
const cleanupEvery = time.Second

type item struct {
	data    []byte
	etag    string
	expires time.Time // zero: never
	// seq orders KeysLike as Dapr's in-memory store does: by last write.
	seq uint64
}

func (it *item) live(now time.Time) bool {
	return it != nil && (it.expires.IsZero() || now.Before(it.expires))
}

// Store is the in-memory state store.
type Store struct {
	mu    sync.RWMutex
	items map[string]*item
	seq   uint64 // of the last write
	now   func() time.Time

	startOnce sync.Once
	stop      chan struct{}
	stopOnce  sync.Once
	done      sync.WaitGroup
}

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.BulkStore     = (*Store)(nil)
	_ state.PrefixDeleter = (*Store)(nil)
	_ state.KeysLiker     = (*Store)(nil)
)

// New returns an empty store; Init starts its expiry sweeper.
func New() *Store {
	return &Store{items: map[string]*item{}, now: time.Now, stop: make(chan struct{})}
}

// NewStore is New as a state.Store, for registries.
func NewStore() state.Store { return New() }

// Init starts the background removal of expired items. The store has no
// metadata.
func (s *Store) Init(context.Context, components.Metadata) error {
	s.startOnce.Do(func() {
		s.done.Add(1)
		go s.sweep()
	})
	return nil
}

func (s *Store) sweep() {
	defer s.done.Done()
	t := time.NewTicker(cleanupEvery)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			now := s.now()
			s.mu.Lock()
			for k, it := range s.items {
				if !it.live(now) {
					delete(s.items, k)
				}
			}
			s.mu.Unlock()
		}
	}
}

// Features: ETags, transactions, TTL, DeleteWithPrefix and KeysLike, in
// Dapr's order.
func (s *Store) Features() []state.Feature {
	return []state.Feature{state.FeatureETag, state.FeatureTransactional, state.FeatureTTL,
		state.FeatureDeleteWithPrefix, state.FeatureKeysLike}
}

// Close stops the sweeper and drops all data.
func (s *Store) Close() error {
	s.stopOnce.Do(func() { close(s.stop) })
	s.done.Wait()
	s.mu.Lock()
	s.items = map[string]*item{}
	s.mu.Unlock()
	return nil
}

// Get returns a live item or nil.
func (s *Store) Get(_ context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	s.mu.RLock()
	it := s.items[req.Key]
	s.mu.RUnlock()
	if !it.live(s.now()) {
		return nil, nil
	}
	return response(it), nil
}

func response(it *item) *state.GetResponse {
	etag := it.etag
	r := &state.GetResponse{Data: append([]byte{}, it.data...), ETag: &etag}
	if !it.expires.IsZero() {
		r.Metadata = state.ExpireTimeMetadata(it.expires)
	}
	return r
}

// check applies Dapr's ETag rules to one key; the caller holds the lock.
func (s *Store) check(key string, etag *string, c state.Concurrency, now time.Time) error {
	it := s.items[key]
	exists := it.live(now)
	if state.HasETag(etag) {
		if !exists || it.etag != *etag {
			return fmt.Errorf("key %q: %w", key, state.ErrETagMismatch)
		}
		return nil
	}
	if c == state.FirstWrite && exists {
		return fmt.Errorf("key %q exists and first-write was asked without an etag: %w", key, state.ErrETagMismatch)
	}
	return nil
}

type prepared struct {
	key     string
	data    []byte
	expires time.Time
}

func prepare(req *state.SetRequest, now time.Time) (prepared, error) {
	if req.Key == "" {
		return prepared{}, fmt.Errorf("set: missing key")
	}
	if err := req.Options.Validate(); err != nil {
		return prepared{}, fmt.Errorf("set %q: %w", req.Key, err)
	}
	ttl, _, err := state.ParseTTL(req.Metadata)
	if err != nil {
		return prepared{}, fmt.Errorf("set %q: %w", req.Key, err)
	}
	p := prepared{key: req.Key, data: append([]byte{}, req.Value...)}
	if ttl > 0 {
		p.expires = now.Add(ttl)
	}
	return p, nil
}

func (s *Store) apply(p prepared) {
	s.seq++
	s.items[p.key] = &item{data: p.data, etag: uuid.NewString(), expires: p.expires, seq: s.seq}
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	return s.BulkSet(ctx, []state.SetRequest{*req})
}

// Delete removes one key.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	return s.BulkDelete(ctx, []state.DeleteRequest{*req})
}

// BulkGet reads keys under one lock.
func (s *Store) BulkGet(_ context.Context, reqs []state.GetRequest) ([]state.BulkGetResponse, error) {
	now := s.now()
	out := make([]state.BulkGetResponse, len(reqs))
	s.mu.RLock()
	defer s.mu.RUnlock()
	for i, r := range reqs {
		out[i].Key = r.Key
		if it := s.items[r.Key]; it.live(now) {
			g := response(it)
			out[i].Data, out[i].ETag, out[i].Metadata = g.Data, g.ETag, g.Metadata
		}
	}
	return out, nil
}

// BulkSet writes all keys or, when one ETag check fails, none.
func (s *Store) BulkSet(_ context.Context, reqs []state.SetRequest) error {
	return s.multi(state.UpsertOps(reqs))
}

// BulkDelete deletes all keys or, when one ETag check fails, none.
func (s *Store) BulkDelete(_ context.Context, reqs []state.DeleteRequest) error {
	return s.multi(state.DeleteOps(reqs))
}

// Multi applies a transaction atomically.
func (s *Store) Multi(_ context.Context, req *state.TransactionRequest) error {
	if err := req.Validate(); err != nil {
		return err
	}
	return s.multi(req.Operations)
}

func (s *Store) multi(ops []state.Operation) error {
	now := s.now()
	sets := make([]prepared, len(ops))
	for i, op := range ops {
		if op.Upsert != nil {
			p, err := prepare(op.Upsert, now)
			if err != nil {
				return err
			}
			sets[i] = p
		} else if op.Delete != nil {
			if op.Delete.Key == "" {
				return fmt.Errorf("delete: missing key")
			}
			if err := op.Delete.Options.Validate(); err != nil {
				return fmt.Errorf("delete %q: %w", op.Delete.Key, err)
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// Check every operation against the state as it will be when its turn
	// comes: simulate on a copy of the touched items.
	saved := map[string]*item{}
	restore := func() {
		for k, it := range saved {
			if it == nil {
				delete(s.items, k)
			} else {
				s.items[k] = it
			}
		}
	}
	for i, op := range ops {
		key := op.Key()
		if _, ok := saved[key]; !ok {
			saved[key] = s.items[key]
		}
		if op.Upsert != nil {
			if err := s.check(key, op.Upsert.ETag, op.Upsert.Options.Concurrency, now); err != nil {
				restore()
				return err
			}
			s.apply(sets[i])
			continue
		}
		if err := s.check(key, op.Delete.ETag, op.Delete.Options.Concurrency, now); err != nil {
			restore()
			return err
		}
		delete(s.items, key)
	}
	return nil
}

// DeleteWithPrefix deletes the live keys directly under req.Prefix and
// counts them; expired ones go too, uncounted.
func (s *Store) DeleteWithPrefix(_ context.Context, req *state.DeleteWithPrefixRequest) (*state.DeleteWithPrefixResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	now := s.now()
	var n int64
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, it := range s.items {
		if req.Matches(k) {
			if it.live(now) {
				n++
			}
			delete(s.items, k)
		}
	}
	return &state.DeleteWithPrefixResponse{Count: n}, nil
}

// KeysLike lists the live keys matching the pattern in the order they were
// last written, as Dapr's in-memory store does (workflow instance lists
// come out oldest first); the continuation token is the write sequence
// number of the previous page's last key.
func (s *Store) KeysLike(_ context.Context, req *state.KeysLikeRequest) (*state.KeysLikeResponse, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	re, err := state.LikePattern(req.Pattern)
	if err != nil {
		return nil, err
	}
	after := uint64(0)
	if req.ContinuationToken != nil {
		if after, err = strconv.ParseUint(*req.ContinuationToken, 10, 64); err != nil {
			return nil, fmt.Errorf("keys like: continuation token %q is not one this store returned", *req.ContinuationToken)
		}
	}
	type found struct {
		key string
		seq uint64
	}
	var keys []found
	now := s.now()
	s.mu.RLock()
	for k, it := range s.items {
		if it.live(now) && it.seq > after && re.MatchString(k) {
			keys = append(keys, found{k, it.seq})
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(keys, func(a, b found) int { return cmp.Compare(a.seq, b.seq) })
	resp := &state.KeysLikeResponse{}
	if req.PageSize != nil && *req.PageSize > 0 && len(keys) > int(*req.PageSize) {
		keys = keys[:*req.PageSize]
		token := strconv.FormatUint(keys[len(keys)-1].seq, 10)
		resp.ContinuationToken = &token
	}
	for _, f := range keys {
		resp.Keys = append(resp.Keys, f.key)
	}
	return resp, nil
}
