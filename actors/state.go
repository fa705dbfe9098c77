package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tandemrun/tandem/components/state"
)

// ErrInstanceMissing: a state transaction for an actor not active here.
var ErrInstanceMissing = errors.New("actor instance is missing")

// StateOp is one operation of POST /v1.0/actors/{type}/{id}/state.
type StateOp struct {
	Operation string `json:"operation"` // upsert or delete
	Request   struct {
		Key      string            `json:"key"`
		Value    json.RawMessage   `json:"value"`
		Metadata map[string]string `json:"metadata"`
	} `json:"request"`
	// Raw, when set, is stored as is instead of Request.Value (the gRPC
	// API's values are bytes).
	Raw []byte `json:"-"`
	// ETag, when set, must be the key's stored version, or the whole
	// transaction fails with state.ErrETagMismatch: the workflow engine's
	// optimistic concurrency on its metadata row (the actors API has no
	// ETags).
	ETag *string `json:"-"`
}

// stateKey is Dapr's layout: {appId}||{type}||{id}||{key}.
func (r *Runtime) stateKey(actorType, actorID, k string) string {
	return r.cfg.AppID + "||" + actorType + "||" + actorID + "||" + k
}

func (r *Runtime) store() (state.Store, error) {
	if r.cfg.StateStore == nil {
		return nil, ErrNoStateStore
	}
	st, ok := r.cfg.StateStore()
	if !ok {
		return nil, ErrNoStateStore
	}
	if _, tx := st.(state.Transactional); !tx || !state.HasFeature(st.Features(), state.FeatureETag) {
		return nil, ErrNoStateStore
	}
	return st, nil
}

// GetState reads one key of an actor's state; nil when missing.
func (r *Runtime) GetState(ctx context.Context, actorType, actorID, k string) ([]byte, error) {
	data, _, err := r.GetStateMetadata(ctx, actorType, actorID, k)
	return data, err
}

// LookupState is GetState that also tells a key stored with an empty
// value from a missing one (the actor state stores have ETags).
func (r *Runtime) LookupState(ctx context.Context, actorType, actorID, k string) ([]byte, bool, error) {
	data, etag, err := r.GetStateETag(ctx, actorType, actorID, k)
	if err != nil {
		return nil, false, err
	}
	return data, etag != nil || len(data) > 0, nil
}

// GetStateETag is GetState with the value's version (nil when the key is
// missing), which a StateOp.ETag of a later transaction can name.
func (r *Runtime) GetStateETag(ctx context.Context, actorType, actorID, k string) ([]byte, *string, error) {
	if r == nil || r.placement == nil {
		return nil, nil, ErrNoPlacement
	}
	st, err := r.store()
	if err != nil {
		return nil, nil, err
	}
	resp, err := st.Get(ctx, &state.GetRequest{
		Key: r.stateKey(actorType, actorID, k), Metadata: map[string]string{"partitionKey": r.cfg.AppID + "||" + actorType + "||" + actorID},
	})
	if err != nil || resp == nil {
		return nil, nil, err
	}
	return resp.Data, resp.ETag, nil
}

// GetStateMetadata is GetState with the store's metadata of the value
// (ttlExpireTime, which daprd's API returns).
func (r *Runtime) GetStateMetadata(ctx context.Context, actorType, actorID, k string) ([]byte, map[string]string, error) {
	if r == nil || r.placement == nil {
		return nil, nil, ErrNoPlacement
	}
	st, err := r.store()
	if err != nil {
		return nil, nil, err
	}
	resp, err := st.Get(ctx, &state.GetRequest{
		Key: r.stateKey(actorType, actorID, k), Metadata: map[string]string{"partitionKey": r.cfg.AppID + "||" + actorType + "||" + actorID},
	})
	if err != nil {
		return nil, nil, err
	}
	if resp == nil {
		return nil, nil, nil
	}
	return resp.Data, resp.Metadata, nil
}

// TransactState applies ops to the state of an actor active on this host,
// atomically.
func (r *Runtime) TransactState(ctx context.Context, actorType, actorID string, ops []StateOp) error {
	st, err := r.activeStore(actorType, actorID)
	if err != nil {
		return err
	}
	return r.transact(ctx, st, actorType, actorID, ops)
}

// activeStore is the actor state store, for an actor active on this
// host.
func (r *Runtime) activeStore(actorType, actorID string) (state.Store, error) {
	if r == nil || r.placement == nil {
		return nil, ErrNoPlacement
	}
	st, err := r.store()
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	k := key(actorType, actorID)
	_, active := r.active[k]
	active = active || r.draining[k] > 0 // the last turn of an actor being deactivated
	r.mu.Unlock()
	if !active {
		return nil, ErrInstanceMissing
	}
	return st, nil
}

// TransactStateDirect is TransactState for an actor wherever it is
// active, or nowhere: outside its turns, as daprd's workflow force purge
// writes the store. The caller accepts racing the actor's own writes.
func (r *Runtime) TransactStateDirect(ctx context.Context, actorType, actorID string, ops []StateOp) error {
	if r == nil || r.placement == nil {
		return ErrNoPlacement
	}
	st, err := r.store()
	if err != nil {
		return err
	}
	return r.transact(ctx, st, actorType, actorID, ops)
}

// TransactStateETags is TransactState that also returns the ETag each key
// the operations leave stored ends with, by the actor's key; nil (and no
// error) when the store does not tell them (read them with GetStateETag).
func (r *Runtime) TransactStateETags(ctx context.Context, actorType, actorID string, ops []StateOp) (map[string]string, error) {
	st, err := r.activeStore(actorType, actorID)
	if err != nil {
		return nil, err
	}
	return r.transactETags(ctx, st, actorType, actorID, ops)
}

// transactETags is TransactStateETags on st.
func (r *Runtime) transactETags(ctx context.Context, st state.Store, actorType, actorID string, ops []StateOp) (map[string]string, error) {
	tx, ok := st.(state.TransactionalETags)
	if !ok {
		return nil, r.transact(ctx, st, actorType, actorID, ops)
	}
	req, err := r.transaction(actorType, actorID, ops)
	if err != nil {
		return nil, err
	}
	stored, err := tx.MultiETags(ctx, req)
	if err != nil {
		return nil, err
	}
	tags := make(map[string]string, len(stored))
	prefix := r.stateKey(actorType, actorID, "")
	for k, v := range stored {
		if ak, ok := strings.CutPrefix(k, prefix); ok {
			tags[ak] = v
		}
	}
	return tags, nil
}

func (r *Runtime) transact(ctx context.Context, st state.Store, actorType, actorID string, ops []StateOp) error {
	req, err := r.transaction(actorType, actorID, ops)
	if err != nil {
		return err
	}
	return st.(state.Transactional).Multi(ctx, req)
}

// transaction is the store's transaction of an actor's ops.
func (r *Runtime) transaction(actorType, actorID string, ops []StateOp) (*state.TransactionRequest, error) {
	partition := map[string]string{"partitionKey": r.cfg.AppID + "||" + actorType + "||" + actorID}
	req := &state.TransactionRequest{Metadata: partition}
	for _, op := range ops {
		md := map[string]string{"partitionKey": partition["partitionKey"]}
		for k, v := range op.Request.Metadata {
			md[k] = v
		}
		k := r.stateKey(actorType, actorID, op.Request.Key)
		switch strings.ToLower(op.Operation) {
		case "upsert":
			set := &state.SetRequest{Key: k, Value: op.Raw, IsBinary: op.Raw != nil && !json.Valid(op.Raw), Metadata: md, ETag: op.ETag}
			if op.Raw == nil {
				v, err := compactJSON(op.Request.Value)
				if err != nil {
					return nil, fmt.Errorf("value of %q: %w", op.Request.Key, err)
				}
				set.Value = v
			}
			req.Operations = append(req.Operations, state.Operation{Upsert: set})
		case "delete":
			req.Operations = append(req.Operations, state.Operation{Delete: &state.DeleteRequest{Key: k, Metadata: md, ETag: op.ETag}})
		default:
			return nil, fmt.Errorf("operation type %s not supported", op.Operation)
		}
	}
	return req, nil
}

// compactJSON re-encodes a value as daprd stores it (decoded, then
// marshalled again), so both write the same bytes.
func compactJSON(raw json.RawMessage) ([]byte, error) {
	if len(raw) == 0 {
		return []byte("null"), nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

// ErrNoKeyListing: the actor state store cannot list its keys.
var ErrNoKeyListing = errors.New("the actor state store does not support listing keys (KeysLike); use state.sqlite, state.in-memory or another store that does")

// ListActorIDs pages through the IDs of the actors of a type that have
// state key k, as daprd lists workflow instances: a KeysLike over
// "{appId}||{type}||%||{k}". token continues a previous page; pageSize 0
// means the store's default.
func (r *Runtime) ListActorIDs(ctx context.Context, actorType, k string, token *string, pageSize uint32) ([]string, *string, error) {
	if r == nil || r.placement == nil {
		return nil, nil, ErrNoPlacement
	}
	st, err := r.store()
	if err != nil {
		return nil, nil, err
	}
	kl, ok := st.(state.KeysLiker)
	if !ok {
		return nil, nil, ErrNoKeyListing
	}
	req := &state.KeysLikeRequest{Pattern: r.stateKey(actorType, "%", k), ContinuationToken: token}
	if pageSize > 0 {
		req.PageSize = &pageSize
	}
	resp, err := kl.KeysLike(ctx, req)
	if err != nil {
		return nil, nil, err
	}
	ids := make([]string, 0, len(resp.Keys))
	for _, key := range resp.Keys {
		parts := strings.Split(key, "||")
		if len(parts) != 4 {
			return nil, nil, fmt.Errorf("actor state key %q: want {appId}||{type}||{id}||{key}", key)
		}
		ids = append(ids, parts[2])
	}
	return ids, resp.ContinuationToken, nil
}
