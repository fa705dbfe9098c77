package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"reflect"
	"sync"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/resiliency"
)

// StateConfig is what the state API serves with.
type StateConfig struct {
	// Registry holds the state store instances by component name.
	Registry *components.Registry[state.Store]
	// AppID and Namespace are the sidecar's, for key prefixes.
	AppID, Namespace string
	// Metadata returns a component's resolved metadata (for its keyPrefix
	// option); nil, or false, means the default appid prefix.
	Metadata func(name string) (components.Metadata, bool)
	// Log receives failures at debug level; nil discards them.
	Log *slog.Logger
	// Resiliency, if set, returns the Resiliency policies in effect; store
	// calls run under the store's outbound policy (timeout, retries,
	// breaker). Nil: each store call is made once.
	Resiliency func() *resiliency.Set
	// Outbox, if set, is the transactional outbox of the stores whose
	// metadata configures one (see Outbox).
	Outbox *Outbox
}

// State is the state API: it finds the store, applies the component's key
// prefix, calls the store and turns its failures into Dapr's errors
// (*apierr.Error). Requests carry the app's keys; responses give them back
// without prefix. It is safe for concurrent use.
type State struct {
	cfg StateConfig
	log *slog.Logger

	mu       sync.RWMutex
	prefixes map[string]prefixEntry

	// created is when the API was made (Settled).
	created time.Time
}

// prefixEntry caches a store's key prefix and value encryption for one
// instance: a hot reload makes a new instance, whose metadata may say
// otherwise.
type prefixEntry struct {
	inst   state.Store
	prefix state.KeyPrefix
	enc    *state.Encryption
}

// NewState returns the state API for cfg.
func NewState(cfg StateConfig) *State {
	if cfg.Registry == nil {
		cfg.Registry = components.NewRegistry[state.Store]()
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &State{cfg: cfg, log: log, prefixes: map[string]prefixEntry{}, created: time.Now()}
}

// Settled reports whether every state store has had its first Init
// attempt (or firstInitLimit has passed since the API was made): the
// sidecar reports healthy only then, as daprd does once its components are
// initialised, so an app's first call does not meet a store still
// connecting. A store that failed is retried in the background and does
// not hold the sidecar back.
func (s *State) Settled() bool {
	return firstAttemptsDone(s.cfg.Registry, s.created)
}

// storeRef is one request's hold on a ready store.
type storeRef struct {
	name    string
	s       state.Store
	prefix  state.KeyPrefix
	enc     *state.Encryption // nil: values are stored as given
	release func()
}

// storeError maps a registry lookup failure to Dapr's error; appID goes
// in its ErrorInfo metadata (daprd's HTTP API sends it, its gRPC API not).
func (s *State) storeError(name, appID string, err error) *apierr.Error {
	var nr *components.NotReadyError
	switch {
	case errors.As(err, &nr):
		return apierr.StateStoreNotReady(name, err)
	case len(s.cfg.Registry.Names()) == 0:
		return apierr.StateStoreNotConfigured(name, appID)
	default:
		return apierr.StateStoreNotFound(name, appID)
	}
}

// Check reports whether name is a ready store, as an *apierr.Error; the
// HTTP API calls it before reading a body so errors come in daprd's order.
func (s *State) Check(name string) error {
	return s.CheckStore(name, s.cfg.AppID)
}

// CheckStore is Check with the app ID of the lookup errors' ErrorInfo
// metadata: the gRPC API gives "" (daprd's sends none) and calls it before
// validating the request, as daprd looks the store up first.
func (s *State) CheckStore(name, appID string) error {
	if _, err := s.cfg.Registry.Ready(name); err != nil {
		return s.storeError(name, appID, err)
	}
	return nil
}

// CheckTransactional is Check that also requires transactions. appID goes
// in the ErrorInfo metadata of a store lookup error: daprd's HTTP API
// sends its app ID there, its gRPC API ("") nothing.
func (s *State) CheckTransactional(name, appID string) error {
	st, err := s.cfg.Registry.Ready(name)
	if err != nil {
		return s.storeError(name, appID, err)
	}
	if !transactional(st) {
		return apierr.StateTransactionsNotSupported(name)
	}
	return nil
}

// bulkStore reports whether st has its own bulk writes.
func bulkStore(st state.Store) bool {
	_, ok := st.(state.BulkStore)
	return ok
}

func transactional(st state.Store) bool {
	_, ok := st.(state.Transactional)
	return ok && state.HasFeature(st.Features(), state.FeatureTransactional)
}

// acquire takes a ready store for the length of a call.
func (s *State) acquire(name string) (*storeRef, error) {
	st, release, err := s.cfg.Registry.Acquire(name)
	if err != nil {
		s.log.Debug("state store unavailable", "store", name, "error", err)
		return nil, s.storeError(name, "", err)
	}
	e, err := s.prefixFor(name, st)
	if err != nil {
		release()
		return nil, apierr.Internal(err)
	}
	return &storeRef{name: name, s: st, prefix: e.prefix, enc: e.enc, release: release}, nil
}

// prefixFor returns the key prefix and encryption of the store's current
// instance.
func (s *State) prefixFor(name string, inst state.Store) (prefixEntry, error) {
	cacheable := inst != nil && reflect.TypeOf(inst).Comparable()
	s.mu.RLock()
	e, ok := s.prefixes[name]
	s.mu.RUnlock()
	if ok && cacheable && e.inst == inst {
		return e, nil
	}
	md := components.Metadata{Name: name}
	found := false
	if s.cfg.Metadata != nil {
		md, found = s.cfg.Metadata(name)
		md.Name = name
	}
	if md.AppID == "" {
		md.AppID = s.cfg.AppID
	}
	if md.Namespace == "" {
		md.Namespace = s.cfg.Namespace
	}
	p, err := state.NewKeyPrefix(md)
	if err != nil {
		return prefixEntry{}, err
	}
	enc, err := state.NewEncryption(md)
	if err != nil {
		return prefixEntry{}, err
	}
	e = prefixEntry{inst: inst, prefix: p, enc: enc}
	// Cache only what the component's metadata said: a failed lookup is
	// retried on the next call rather than pinned to this instance.
	if cacheable && (found || s.cfg.Metadata == nil) {
		s.mu.Lock()
		s.prefixes[name] = e
		s.mu.Unlock()
	}
	return e, nil
}

// seal encrypts a value to write when the store encrypts (Dapr's
// primaryEncryptionKey). Like daprd, a JSON string from the HTTP API is
// encrypted as its text, without the quotes, and read back that way; other
// values are encrypted as they are. The sealed value is opaque bytes.
func (r *storeRef) seal(req *state.SetRequest) error {
	if r.enc == nil {
		return nil
	}
	plain := req.Value
	var text string
	if !req.IsBinary && json.Unmarshal(req.Value, &text) == nil {
		plain = []byte(text)
	}
	sealed, err := r.enc.Encrypt(plain)
	if err != nil {
		return apierr.StateSave(r.name, apierr.StateETagKind{}, err)
	}
	req.Value, req.IsBinary = sealed, true
	return nil
}

// open decrypts a value read from a store that encrypts.
func (r *storeRef) open(data []byte) ([]byte, error) {
	if r.enc == nil || data == nil {
		return data, nil
	}
	return r.enc.Decrypt(data)
}

// key validates and prefixes an app key.
func (r *storeRef) key(k string) (string, error) {
	pk, err := r.prefix.Key(k)
	if err != nil {
		return "", apierr.StateIllegalKey(r.name, k)
	}
	return pk, nil
}

func etagKind(err error) apierr.StateETagKind {
	return apierr.StateETagKind{
		Mismatch: errors.Is(err, state.ErrETagMismatch),
		Invalid:  errors.Is(err, state.ErrETagInvalid),
	}
}

// Get reads one key; a missing key is a nil response and no error.
func (s *State) Get(ctx context.Context, store string, req state.GetRequest) (*state.GetResponse, error) {
	ref, err := s.acquire(store)
	if err != nil {
		return nil, err
	}
	defer ref.release()
	appKey := req.Key
	if req.Key, err = ref.key(appKey); err != nil {
		return nil, err
	}
	resp, err := outbound(ctx, s.cfg.Resiliency, store, resiliency.Statestore, func(ctx context.Context) (*state.GetResponse, error) {
		return ref.s.Get(ctx, &req)
	})
	if err != nil {
		s.log.Debug("state get failed", "store", store, "key", appKey, "error", err)
		return nil, apierr.StateGet(appKey, store, err)
	}
	if resp == nil || resp.Data == nil {
		return nil, nil
	}
	if resp.Data, err = ref.open(resp.Data); err != nil {
		return nil, apierr.StateGet(appKey, store, err)
	}
	return resp, nil
}

// Save writes items. They are all validated first, so a malformed item
// writes nothing. One item is a Set; several are the store's BulkSet when
// it has one (the built-in ones are all or nothing), else one transaction
// when the store has transactions, otherwise one Set per item, each tried
// and every failure reported.
func (s *State) Save(ctx context.Context, store string, items []state.SetRequest) error {
	return batch[state.SetRequest]{
		what: "save",
		prepare: func(ref *storeRef, r *state.SetRequest) (err error) {
			if r.Key == "" {
				return apierr.MalformedRequest(`"key" is a required field`)
			}
			if err := validateWrite(r.Options, r.Metadata); err != nil {
				return err
			}
			if r.Key, err = ref.key(r.Key); err != nil {
				return err
			}
			return ref.seal(r)
		},
		one:  state.Store.Set,
		op:   func(r *state.SetRequest) state.Operation { return state.Operation{Upsert: r} },
		bulk: state.BulkSet,
		fail: apierr.StateSave,
	}.write(ctx, s, store, items)
}

// batch is one of the state write paths that take several items (save,
// bulk delete): how an item is checked and keyed, and how one item, a
// transaction operation and the store's bulk call are made.
type batch[R any] struct {
	what    string                    // for the log: "save", "bulk delete"
	prepare func(*storeRef, *R) error // validates the item and sets its key to the store's
	one     func(state.Store, context.Context, *R) error
	op      func(*R) state.Operation
	bulk    func(context.Context, state.Store, []R) error
	fail    func(store string, kind apierr.StateETagKind, err error) *apierr.Error // the store's error as the API's
}

// write prepares every item first, so a malformed one writes nothing, then
// makes one call: one item alone; several with the store's native bulk
// call when it has one, else as one transaction when the store has
// transactions (all or nothing), otherwise the generic bulk call, which
// tries every item and reports every failure.
func (b batch[R]) write(ctx context.Context, s *State, store string, items []R) error {
	ref, err := s.acquire(store)
	if err != nil {
		return err
	}
	defer ref.release()
	reqs := make([]R, len(items))
	for i := range items {
		reqs[i] = items[i]
		if err := b.prepare(ref, &reqs[i]); err != nil {
			return err
		}
	}
	if len(reqs) == 0 {
		return nil
	}
	err = outboundErr(ctx, s.cfg.Resiliency, store, func(ctx context.Context) error {
		switch {
		case len(reqs) == 1:
			return b.one(ref.s, ctx, &reqs[0])
		case bulkStore(ref.s):
			// The store's own bulk call, as daprd makes it (a pluggable
			// store's BulkSet may fail in its own way); the built-in
			// stores' are all or nothing.
			return b.bulk(ctx, ref.s, reqs)
		case transactional(ref.s):
			ops := make([]state.Operation, len(reqs))
			for i := range reqs {
				ops[i] = b.op(&reqs[i])
			}
			return ref.s.(state.Transactional).Multi(ctx, &state.TransactionRequest{Operations: ops})
		default:
			return b.bulk(ctx, ref.s, reqs)
		}
	})
	if err != nil {
		s.log.Debug("state "+b.what+" failed", "store", store, "items", len(reqs), "error", err)
		return b.fail(store, etagKind(err), err)
	}
	return nil
}

// validateWrite rejects unknown concurrency/consistency modes and bad TTLs
// before anything is written (daprd leaves both to the store, which may
// already have written other items of the request).
func validateWrite(o state.Options, md map[string]string) error {
	if err := o.Validate(); err != nil {
		return apierr.MalformedRequest("%v", err)
	}
	if _, _, err := state.ParseTTL(md); err != nil {
		return apierr.MalformedRequest("%v", err)
	}
	return nil
}

// Delete removes one key.
func (s *State) Delete(ctx context.Context, store string, req state.DeleteRequest) error {
	ref, err := s.acquire(store)
	if err != nil {
		return err
	}
	defer ref.release()
	appKey := req.Key
	if err := req.Options.Validate(); err != nil {
		return apierr.MalformedRequest("%v", err)
	}
	if req.Key, err = ref.key(appKey); err != nil {
		return err
	}
	if err := outboundErr(ctx, s.cfg.Resiliency, store, func(ctx context.Context) error { return ref.s.Delete(ctx, &req) }); err != nil {
		s.log.Debug("state delete failed", "store", store, "key", appKey, "error", err)
		return apierr.StateDelete(appKey, etagKind(err), err)
	}
	return nil
}

// BulkDelete removes several keys, atomically when the store has
// transactions.
func (s *State) BulkDelete(ctx context.Context, store string, items []state.DeleteRequest) error {
	return batch[state.DeleteRequest]{
		what: "bulk delete",
		prepare: func(ref *storeRef, r *state.DeleteRequest) (err error) {
			if err := r.Options.Validate(); err != nil {
				return apierr.MalformedRequest("%v", err)
			}
			r.Key, err = ref.key(r.Key)
			return err
		},
		one:  state.Store.Delete,
		op:   func(r *state.DeleteRequest) state.Operation { return state.Operation{Delete: r} },
		bulk: state.BulkDelete,
		fail: apierr.StateBulkDelete,
	}.write(ctx, s, store, items)
}

// BulkGet reads several keys. Per-key failures are in the items' Error;
// keys come back without prefix, in the store's order.
func (s *State) BulkGet(ctx context.Context, store string, keys []string, md map[string]string, parallelism int) ([]state.BulkGetResponse, error) {
	ref, err := s.acquire(store)
	if err != nil {
		return nil, err
	}
	defer ref.release()
	if len(keys) == 0 {
		return []state.BulkGetResponse{}, nil
	}
	reqs := make([]state.GetRequest, len(keys))
	for i, k := range keys {
		pk, err := ref.key(k)
		if err != nil {
			return nil, err
		}
		reqs[i] = state.GetRequest{Key: pk, Metadata: md}
	}
	out, err := outbound(ctx, s.cfg.Resiliency, store, resiliency.Statestore, func(ctx context.Context) ([]state.BulkGetResponse, error) {
		return state.BulkGet(ctx, ref.s, reqs, parallelism)
	})
	if err != nil {
		s.log.Debug("state bulk get failed", "store", store, "keys", len(keys), "error", err)
		return nil, apierr.StateBulkGet(store, err)
	}
	for i := range out {
		out[i].Key = ref.prefix.Original(out[i].Key)
		if out[i].Error == "" {
			if out[i].Data, err = ref.open(out[i].Data); err != nil {
				out[i].Error = err.Error()
			}
		}
		if out[i].Error != "" {
			out[i].Data, out[i].ETag = nil, nil
		}
	}
	return out, nil
}

// multiMaxSizer is implemented by stores that limit the operations of one
// transaction (Dapr's TransactionalStoreMultiMaxSize).
type multiMaxSizer interface {
	MultiMaxSize() int
}

// Transact applies a transaction atomically. Operation keys are the app's.
func (s *State) Transact(ctx context.Context, store string, req state.TransactionRequest) error {
	ref, err := s.acquire(store)
	if err != nil {
		return err
	}
	defer ref.release()
	tx, ok := ref.s.(state.Transactional)
	if !ok || !transactional(ref.s) {
		return apierr.StateTransactionsNotSupported(store)
	}
	if len(req.Operations) == 0 {
		return nil
	}
	// The outbox's projections are messages, not writes.
	appOps, proj, outbox, hasOutbox := s.cfg.Outbox.prepare(store, req.Operations)
	req.Operations = appOps
	ops := make([]state.Operation, len(req.Operations))
	for i, op := range req.Operations {
		switch {
		case op.Upsert != nil && op.Delete == nil:
			u := *op.Upsert
			if err := validateWrite(u.Options, u.Metadata); err != nil {
				return err
			}
			if u.Key == "" {
				return apierr.MalformedRequest("transaction operation %d: \"key\" is a required field", i)
			}
			if u.Key, err = ref.key(u.Key); err != nil {
				return err
			}
			if err := ref.seal(&u); err != nil {
				return err
			}
			ops[i].Upsert = &u
		case op.Delete != nil && op.Upsert == nil:
			d := *op.Delete
			if err := d.Options.Validate(); err != nil {
				return apierr.MalformedRequest("%v", err)
			}
			if d.Key == "" {
				return apierr.MalformedRequest("transaction operation %d: \"key\" is a required field", i)
			}
			if d.Key, err = ref.key(d.Key); err != nil {
				return err
			}
			ops[i].Delete = &d
		default:
			return apierr.MalformedRequest("transaction operation %d: exactly one of upsert and delete must be set", i)
		}
	}
	if m, ok := ref.s.(multiMaxSizer); ok {
		if limit := m.MultiMaxSize(); limit > 0 && len(ops) > limit {
			return apierr.StateTooManyTransactionalOps(store, len(ops), limit)
		}
	}
	if hasOutbox {
		// Published before the write: the outbox's subscription publishes
		// each message on once the transaction's marker is there, so a
		// failed write sends nothing and a failed publish writes nothing.
		markers, err := s.cfg.Outbox.publishInternal(ctx, outbox, req.Operations, proj)
		if err != nil {
			s.log.Debug("outbox publish failed; transaction not written", "store", store, "error", err)
			return apierr.PubSubOutbox(s.cfg.AppID, err)
		}
		ops = append(ops, markers...)
	}
	if err := outboundErr(ctx, s.cfg.Resiliency, store, func(ctx context.Context) error {
		return tx.Multi(ctx, &state.TransactionRequest{Operations: ops, Metadata: maps.Clone(req.Metadata)})
	}); err != nil {
		s.log.Debug("state transaction failed", "store", store, "operations", len(ops), "error", err)
		return apierr.StateTransaction(err)
	}
	return nil
}

// Query runs a state query (Dapr's JSON query language) on a store with
// the query API. Result keys come back without prefix; as in daprd, the
// results are not restricted to this app's keys.
func (s *State) Query(ctx context.Context, store string, query []byte, md map[string]string) (*state.QueryResponse, error) {
	ref, err := s.acquire(store)
	if err != nil {
		return nil, err
	}
	defer ref.release()
	q, ok := ref.s.(state.Querier)
	if !ok {
		return nil, apierr.StateQueryUnsupported(store)
	}
	parsed, err := state.ParseQuery(query)
	if err != nil {
		return nil, apierr.StateQueryFailed(store, "failed to parse JSON query body: "+err.Error())
	}
	resp, err := outbound(ctx, s.cfg.Resiliency, store, resiliency.Statestore, func(ctx context.Context) (*state.QueryResponse, error) {
		return q.Query(ctx, &state.QueryRequest{Query: *parsed, Metadata: md})
	})
	if err != nil {
		s.log.Debug("state query failed", "store", store, "error", err)
		if errors.Is(err, state.ErrNotSupported) {
			return nil, apierr.StateQueryUnsupported(store)
		}
		return nil, apierr.StateQueryError(store, err)
	}
	if resp == nil {
		return &state.QueryResponse{}, nil
	}
	for i := range resp.Results {
		resp.Results[i].Key = ref.prefix.Original(resp.Results[i].Key)
	}
	return resp, nil
}

// outbound runs op, a call to component name, under the component's
// outbound Resiliency policy; with no policy it is a plain call. Outcomes
// that a retry cannot change (ETag conflicts, unsupported operations) are
// not retried.
func outbound[T any](ctx context.Context, policies func() *resiliency.Set, name string, kind resiliency.ComponentKind, op func(context.Context) (T, error)) (T, error) {
	var p *resiliency.Policy
	if policies != nil {
		p = policies().ForComponentOutbound(name, kind)
	}
	if p == nil {
		return op(ctx)
	}
	return resiliency.Do(ctx, p, func(ctx context.Context) (T, error) {
		v, err := op(ctx)
		if errors.Is(err, state.ErrETagMismatch) || errors.Is(err, state.ErrETagInvalid) || errors.Is(err, state.ErrNotSupported) {
			err = resiliency.Permanent(err)
		}
		return v, err
	})
}

// outboundErr is outbound for a state store call without a result.
func outboundErr(ctx context.Context, policies func() *resiliency.Set, store string, op func(context.Context) error) error {
	_, err := outbound(ctx, policies, store, resiliency.Statestore, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, op(ctx)
	})
	return err
}
