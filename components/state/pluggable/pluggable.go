// Package pluggable is the client of Dapr pluggable state stores: a store
// written in any language, serving dapr.proto.components.v1 StateStore
// (and optionally TransactionalStateStore, QueriableStateStore and
// TransactionalStoreMultiMaxSize) on a Unix socket in the pluggable
// components folder (components.SocketsFolder). The component type
// "state.<name>" is the socket "<name>.sock".
//
// Errors are mapped as daprd maps them: a FailedPrecondition or
// InvalidArgument status whose one detail is a BadRequest violation of the
// field "etag" is an ETag mismatch or an invalid ETag; any other status is
// returned as it came (with its details), so the API can pass the store's
// own error on to the app.
//
// cmd/tandemd routes the types without a built-in store here when such a
// socket exists (Fallback).
package pluggable

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

var (
	_ state.Store         = (*Store)(nil)
	_ state.Transactional = (*Store)(nil)
	_ state.BulkStore     = (*Store)(nil)
	_ state.Querier       = (*Store)(nil)
)

// Store is one pluggable state store instance.
type Store struct {
	log    *slog.Logger
	socket string

	conn     *grpc.ClientConn
	store    compv1.StateStoreClient
	tx       compv1.TransactionalStateStoreClient
	query    compv1.QueriableStateStoreClient
	maxSize  compv1.TransactionalStoreMultiMaxSizeClient
	features []state.Feature

	once  sync.Once
	multi int
}

// New returns an uninitialised client of the store listening on socket;
// log may be nil.
func New(socket string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{log: log, socket: socket}
}

// Fallback extends a constructor with the pluggable stores in folder: a
// type next does not know is served by the socket of that name, when there
// is one.
func Fallback(next func(typ string) (state.Store, bool), folder components.SocketsFolder, log *slog.Logger) func(typ string) (state.Store, bool) {
	return func(typ string) (state.Store, bool) {
		if s, ok := next(typ); ok {
			return s, true
		}
		socket, ok := folder.Socket("state", typ)
		if !ok {
			return nil, false
		}
		if log == nil {
			return New(socket, nil), true
		}
		return New(socket, log.With("component_type", typ)), true
	}
}

// Init connects, initialises the store and asks for its features.
func (s *Store) Init(ctx context.Context, md components.Metadata) error {
	if s.conn == nil {
		conn, err := components.DialSocket(s.socket, md.Name)
		if err != nil {
			return err
		}
		s.conn = conn
		s.store = compv1.NewStateStoreClient(conn)
		s.tx = compv1.NewTransactionalStateStoreClient(conn)
		s.query = compv1.NewQueriableStateStoreClient(conn)
		s.maxSize = compv1.NewTransactionalStoreMultiMaxSizeClient(conn)
	}
	if _, err := s.store.Init(ctx, &compv1.InitRequest{Metadata: &compv1.MetadataRequest{Properties: md.Properties}}, grpc.WaitForReady(true)); err != nil {
		return fmt.Errorf("pluggable state store %s: init: %w", s.socket, err)
	}
	f, err := s.store.Features(ctx, &compv1.FeaturesRequest{})
	if err != nil {
		return fmt.Errorf("pluggable state store %s: features: %w", s.socket, err)
	}
	s.features = s.features[:0]
	for _, x := range f.GetFeatures() {
		s.features = append(s.features, state.Feature(x))
	}
	return nil
}

// Features are what the store said it has.
func (s *Store) Features() []state.Feature { return s.features }

// etagErr maps daprd's ETag statuses; others come back as they are.
func etagErr(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	if st.Code() != codes.FailedPrecondition && st.Code() != codes.InvalidArgument {
		return err
	}
	d := st.Details()
	if len(d) != 1 {
		return err
	}
	br, ok := d[0].(*errdetails.BadRequest)
	if !ok || len(br.GetFieldViolations()) != 1 || br.GetFieldViolations()[0].GetField() != "etag" {
		return err
	}
	desc := br.GetFieldViolations()[0].GetDescription()
	if st.Code() == codes.FailedPrecondition {
		return fmt.Errorf("%s: %w", desc, state.ErrETagMismatch)
	}
	return fmt.Errorf("%s: %w", desc, state.ErrETagInvalid)
}

func etagOf(e *string) *compv1.Etag {
	if e == nil {
		return nil
	}
	return &compv1.Etag{Value: *e}
}

func etagFrom(e *compv1.Etag) *string {
	if e == nil {
		return nil
	}
	v := e.GetValue()
	return &v
}

func optionsOf(o state.Options) *compv1.StateOptions {
	out := &compv1.StateOptions{}
	switch o.Concurrency {
	case state.FirstWrite:
		out.Concurrency = compv1.StateOptions_CONCURRENCY_FIRST_WRITE
	case state.LastWrite:
		out.Concurrency = compv1.StateOptions_CONCURRENCY_LAST_WRITE
	}
	out.Consistency = consistencyOf(o.Consistency)
	return out
}

func consistencyOf(c state.Consistency) compv1.StateOptions_StateConsistency {
	switch c {
	case state.Strong:
		return compv1.StateOptions_CONSISTENCY_STRONG
	case state.Eventual:
		return compv1.StateOptions_CONSISTENCY_EVENTUAL
	}
	return compv1.StateOptions_CONSISTENCY_UNSPECIFIED
}

func setOf(r *state.SetRequest) *compv1.SetRequest {
	return &compv1.SetRequest{Key: r.Key, Value: r.Value, Etag: etagOf(r.ETag), Metadata: r.Metadata,
		ContentType: r.Metadata[state.MetadataContentType], Options: optionsOf(r.Options)}
}

func deleteOf(r *state.DeleteRequest) *compv1.DeleteRequest {
	return &compv1.DeleteRequest{Key: r.Key, Etag: etagOf(r.ETag), Metadata: r.Metadata, Options: optionsOf(r.Options)}
}

func getOf(r *state.GetRequest) *compv1.GetRequest {
	return &compv1.GetRequest{Key: r.Key, Metadata: r.Metadata, Consistency: consistencyOf(r.Options.Consistency)}
}

// Get reads one key.
func (s *Store) Get(ctx context.Context, req *state.GetRequest) (*state.GetResponse, error) {
	res, err := s.store.Get(ctx, getOf(req))
	if err != nil {
		return nil, err
	}
	return &state.GetResponse{Data: res.GetData(), ETag: etagFrom(res.GetEtag()), Metadata: res.GetMetadata()}, nil
}

// Set writes one key.
func (s *Store) Set(ctx context.Context, req *state.SetRequest) error {
	_, err := s.store.Set(ctx, setOf(req))
	return etagErr(err)
}

// Delete removes one key.
func (s *Store) Delete(ctx context.Context, req *state.DeleteRequest) error {
	_, err := s.store.Delete(ctx, deleteOf(req))
	return etagErr(err)
}

// BulkGet reads several keys in one call.
func (s *Store) BulkGet(ctx context.Context, reqs []state.GetRequest) ([]state.BulkGetResponse, error) {
	in := &compv1.BulkGetRequest{Options: &compv1.BulkGetRequestOptions{}}
	for i := range reqs {
		in.Items = append(in.Items, getOf(&reqs[i]))
	}
	res, err := s.store.BulkGet(ctx, in)
	if status.Code(err) == codes.Unimplemented {
		// A store without BulkGet gets one Get per key.
		out := make([]state.BulkGetResponse, 0, len(reqs))
		for i := range reqs {
			r := state.BulkGetResponse{Key: reqs[i].Key}
			if g, err := s.Get(ctx, &reqs[i]); err != nil {
				r.Error = err.Error()
			} else {
				r.Data, r.ETag, r.Metadata = g.Data, g.ETag, g.Metadata
			}
			out = append(out, r)
		}
		return out, nil
	}
	if err != nil {
		return nil, err
	}
	out := make([]state.BulkGetResponse, 0, len(res.GetItems()))
	for _, it := range res.GetItems() {
		out = append(out, state.BulkGetResponse{Key: it.GetKey(), Data: it.GetData(), ETag: etagFrom(it.GetEtag()), Metadata: it.GetMetadata(), Error: it.GetError()})
	}
	return out, nil
}

// BulkSet writes several keys in one call.
func (s *Store) BulkSet(ctx context.Context, reqs []state.SetRequest) error {
	in := &compv1.BulkSetRequest{Options: &compv1.BulkSetRequestOptions{}}
	for i := range reqs {
		in.Items = append(in.Items, setOf(&reqs[i]))
	}
	_, err := s.store.BulkSet(ctx, in)
	return etagErr(err)
}

// BulkDelete removes several keys in one call.
func (s *Store) BulkDelete(ctx context.Context, reqs []state.DeleteRequest) error {
	in := &compv1.BulkDeleteRequest{Options: &compv1.BulkDeleteRequestOptions{}}
	for i := range reqs {
		in.Items = append(in.Items, deleteOf(&reqs[i]))
	}
	_, err := s.store.BulkDelete(ctx, in)
	return etagErr(err)
}

// Multi runs a transaction on the store's TransactionalStateStore.
func (s *Store) Multi(ctx context.Context, req *state.TransactionRequest) error {
	in := &compv1.TransactionalStateRequest{Metadata: req.Metadata}
	for i, op := range req.Operations {
		switch {
		case op.Upsert != nil:
			in.Operations = append(in.Operations, &compv1.TransactionalStateOperation{Request: &compv1.TransactionalStateOperation_Set{Set: setOf(op.Upsert)}})
		case op.Delete != nil:
			in.Operations = append(in.Operations, &compv1.TransactionalStateOperation{Request: &compv1.TransactionalStateOperation_Delete{Delete: deleteOf(op.Delete)}})
		default:
			return fmt.Errorf("transaction operation %d: neither upsert nor delete", i)
		}
	}
	_, err := s.tx.Transact(ctx, in)
	return etagErr(err)
}

// MultiMaxSize is the most operations a transaction may have, asked once
// (-1: no limit, or the store does not say).
func (s *Store) MultiMaxSize() int {
	s.once.Do(func() {
		s.multi = -1
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		res, err := s.maxSize.MultiMaxSize(ctx, &compv1.MultiMaxSizeRequest{})
		if err != nil {
			if status.Code(err) != codes.Unimplemented {
				s.log.Warn("pluggable state store did not give its transaction size limit; none is applied", "error", err)
			}
			return
		}
		s.multi = int(res.GetMaxSize())
	})
	return s.multi
}

// Query runs a query on the store's QueriableStateStore: the filter goes
// as Dapr's JSON, one entry per operator, as daprd sends it.
func (s *Store) Query(ctx context.Context, req *state.QueryRequest) (*state.QueryResponse, error) {
	q := &compv1.Query{Filter: map[string]*anypb.Any{}, Pagination: &compv1.Pagination{Limit: int64(req.Query.Page.Limit), Token: req.Query.Page.Token}}
	if f := req.Query.Filter; f != nil {
		b, err := json.Marshal(filterValue(*f))
		if err != nil {
			return nil, err
		}
		q.Filter[string(f.Op)] = &anypb.Any{Value: b}
	}
	for _, so := range req.Query.Sort {
		order := compv1.Sorting_ASC
		if so.Order == "DESC" {
			order = compv1.Sorting_DESC
		}
		q.Sort = append(q.Sort, &compv1.Sorting{Key: so.Key, Order: order})
	}
	res, err := s.query.Query(ctx, &compv1.QueryRequest{Query: q, Metadata: req.Metadata})
	if err != nil {
		return nil, err
	}
	out := &state.QueryResponse{Token: res.GetToken(), Metadata: res.GetMetadata()}
	for _, it := range res.GetItems() {
		out.Results = append(out.Results, state.QueryItem{Key: it.GetKey(), Data: it.GetData(), ETag: etagFrom(it.GetEtag()), Error: it.GetError()})
	}
	return out, nil
}

// filterValue is the JSON value under a filter's operator.
func filterValue(f state.Filter) any {
	switch f.Op {
	case state.OpAND, state.OpOR:
		subs := make([]map[string]any, 0, len(f.Filters))
		for _, sf := range f.Filters {
			subs = append(subs, map[string]any{string(sf.Op): filterValue(sf)})
		}
		return subs
	case state.OpIN:
		return map[string]any{f.Key: f.Values}
	}
	return map[string]any{f.Key: f.Value}
}

// Close closes the connection.
func (s *Store) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return errors.Join(err)
}
