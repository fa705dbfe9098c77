package inmemory

import (
	"context"

	"github.com/tandemrun/tandem/components/state"
)

// Queryable is the in-memory store with Dapr's state query API on top. It is
// not what state.in-memory registers as (Dapr's state.in-memory has no query
// API, and /v1.0/metadata pins its capabilities): it serves tests of the
// query API layer, which need a querying store without a database server.
type Queryable struct{ *Store }

var _ state.Querier = Queryable{}

// NewQueryable returns an empty Queryable; Init starts its expiry sweeper.
func NewQueryable() state.Store { return Queryable{New()} }

// Features: the store's, plus the query API.
func (q Queryable) Features() []state.Feature {
	return append(q.Store.Features(), state.FeatureQueryAPI)
}

// Query evaluates Dapr's query language over the live JSON values.
func (q Queryable) Query(_ context.Context, req *state.QueryRequest) (*state.QueryResponse, error) {
	now := q.now()
	q.mu.RLock()
	items := make([]state.QueryItem, 0, len(q.items))
	for k, it := range q.items {
		if it.live(now) {
			etag := it.etag
			items = append(items, state.QueryItem{Key: k, Data: it.data, ETag: &etag})
		}
	}
	q.mu.RUnlock()
	return state.EvalQuery(&req.Query, items)
}
