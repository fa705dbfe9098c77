package state

import (
	"context"

	"github.com/tandemrun/tandem/components"
)

// Store is a state store: a key/value store with ETags.
//
// Implementations must be safe for concurrent use after Init returns.
type Store interface {
	// Init connects the store using the component's metadata. It may be
	// called again after a failure (the runtime retries in the background).
	Init(ctx context.Context, md components.Metadata) error
	// Get returns the value of a key, or nil (and no error) when the key is
	// missing or expired.
	Get(ctx context.Context, req *GetRequest) (*GetResponse, error)
	// Set writes a value, honouring req.ETag and req.Options.Concurrency.
	Set(ctx context.Context, req *SetRequest) error
	// Delete removes a key; deleting a missing key without an ETag is not an
	// error.
	Delete(ctx context.Context, req *DeleteRequest) error
	// Features says what the store can do, for /v1.0/metadata and for the
	// API layer to refuse what it cannot.
	Features() []Feature
	// Close releases connections and stops background work.
	Close() error
}

// Transactional is implemented by stores that can apply several writes
// atomically: either every operation is applied or none is.
type Transactional interface {
	// Multi applies the operations in order, atomically. An ETag failure
	// returns an error wrapping ErrETagMismatch and leaves nothing written.
	Multi(ctx context.Context, req *TransactionRequest) error
}

// TransactionalETags is a Transactional store whose transactions tell the
// ETag each key they leave stored ends with, so that a writer that keeps
// versions (the workflow engine) needs no read after its write.
type TransactionalETags interface {
	// MultiETags is Multi that returns the ETag of each key the
	// operations leave stored, by key (deleted keys are absent).
	MultiETags(ctx context.Context, req *TransactionRequest) (map[string]string, error)
}

// BulkStore is implemented by stores with native multi-key operations. For
// the others use the package functions BulkGet, BulkSet and BulkDelete, which
// fall back to one call per key.
type BulkStore interface {
	// BulkGet returns one response per requested key, in any order; missing
	// keys have a response with nil Data.
	BulkGet(ctx context.Context, reqs []GetRequest) ([]BulkGetResponse, error)
	BulkSet(ctx context.Context, reqs []SetRequest) error
	BulkDelete(ctx context.Context, reqs []DeleteRequest) error
}

// Querier is implemented by stores that support Dapr's state query API
// (/v1.0-alpha1/state/{store}/query).
type Querier interface {
	Query(ctx context.Context, req *QueryRequest) (*QueryResponse, error)
}

// PrefixDeleter is implemented by stores that can delete every key under a
// prefix at once, as Dapr's DeleteWithPrefix (daprd uses it to drop an
// actor's state).
type PrefixDeleter interface {
	// DeleteWithPrefix deletes every key that starts with req.Prefix and
	// has no further "||" after it, and returns how many it deleted.
	DeleteWithPrefix(ctx context.Context, req *DeleteWithPrefixRequest) (*DeleteWithPrefixResponse, error)
}

// KeysLiker is implemented by stores that can list keys matching a SQL
// LIKE pattern, as Dapr's KeysLike.
type KeysLiker interface {
	// KeysLike returns the live keys matching req.Pattern, at most
	// *req.PageSize of them when set, with a ContinuationToken when more
	// remain.
	KeysLike(ctx context.Context, req *KeysLikeRequest) (*KeysLikeResponse, error)
}

// Feature is a capability, named as Dapr names it in /v1.0/metadata.
type Feature string

// Dapr's state store capability names.
const (
	FeatureETag          Feature = "ETAG"
	FeatureTransactional Feature = "TRANSACTIONAL"
	FeatureTTL           Feature = "TTL"
	FeatureQueryAPI      Feature = "QUERY_API"
	// FeatureDeleteWithPrefix: the store is a PrefixDeleter.
	FeatureDeleteWithPrefix Feature = "DELETE_WITH_PREFIX"
	// FeatureKeysLike: the store is a KeysLiker.
	FeatureKeysLike Feature = "KEYS_LIKE"
	// FeatureActor is not reported by stores: Capabilities adds it to
	// every store with ETags and transactions, as daprd does.
	FeatureActor Feature = "ACTOR"
)

// Capabilities are a store's features as /v1.0/metadata lists them:
// daprd's rule adds ACTOR to every store with ETags and transactions
// (those it can use for actor state).
func Capabilities(features []Feature) []string {
	out := make([]string, 0, len(features)+1)
	for _, f := range features {
		out = append(out, string(f))
	}
	if HasFeature(features, FeatureETag) && HasFeature(features, FeatureTransactional) && !HasFeature(features, FeatureActor) {
		out = append(out, string(FeatureActor))
	}
	return out
}

// HasFeature reports whether features contains f.
func HasFeature(features []Feature, f Feature) bool {
	for _, x := range features {
		if x == f {
			return true
		}
	}
	return false
}
