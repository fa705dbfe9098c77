package grpcapi

import (
	"context"
	"encoding/json"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// stateJSONContentType is the metadata contentType that makes a gRPC value JSON
// rather than binary, as in daprd's SaveState.
const stateJSONContentType = "application/json"

func stateConcurrency(c commonv1.StateOptions_StateConcurrency) state.Concurrency {
	switch c {
	case commonv1.StateOptions_CONCURRENCY_FIRST_WRITE:
		return state.FirstWrite
	case commonv1.StateOptions_CONCURRENCY_LAST_WRITE:
		return state.LastWrite
	}
	return ""
}

func stateConsistency(c commonv1.StateOptions_StateConsistency) state.Consistency {
	switch c {
	case commonv1.StateOptions_CONSISTENCY_EVENTUAL:
		return state.Eventual
	case commonv1.StateOptions_CONSISTENCY_STRONG:
		return state.Strong
	}
	return ""
}

func stateOptions(o *commonv1.StateOptions) state.Options {
	if o == nil {
		return state.Options{}
	}
	return state.Options{Concurrency: stateConcurrency(o.GetConcurrency()), Consistency: stateConsistency(o.GetConsistency())}
}

func stateETag(e *commonv1.Etag) *string {
	if e == nil {
		return nil
	}
	v := e.GetValue()
	return &v
}

func stateDeref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// setRequest converts a StateItem. Its value is binary unless its metadata
// contentType is application/json, in which case it must be JSON.
func stateSetRequest(it *commonv1.StateItem) (state.SetRequest, error) {
	req := state.SetRequest{
		Key:      it.GetKey(),
		Value:    it.GetValue(),
		ETag:     stateETag(it.GetEtag()),
		Metadata: it.GetMetadata(),
		Options:  stateOptions(it.GetOptions()),
		IsBinary: true,
	}
	if req.Metadata[state.MetadataContentType] == stateJSONContentType {
		if !json.Valid(req.Value) {
			return req, apierr.MalformedRequest("state key %s: metadata contentType is %s but the value is not valid JSON", req.Key, stateJSONContentType)
		}
		req.IsBinary = false
	}
	return req, nil
}

func stateDeleteRequest(it *commonv1.StateItem) state.DeleteRequest {
	return state.DeleteRequest{
		Key:      it.GetKey(),
		ETag:     stateETag(it.GetEtag()),
		Metadata: it.GetMetadata(),
		Options:  stateOptions(it.GetOptions()),
	}
}

// GetState reads one key; a missing key is an empty response.
func (a *API) GetState(ctx context.Context, in *runtimev1.GetStateRequest) (*runtimev1.GetStateResponse, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.GetState(ctx, in)
	}
	resp, err := a.cfg.State.Get(ctx, in.GetStoreName(), state.GetRequest{
		Key:      in.GetKey(),
		Metadata: in.GetMetadata(),
		Options:  state.Options{Consistency: stateConsistency(in.GetConsistency())},
	})
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	if resp == nil {
		return &runtimev1.GetStateResponse{}, nil
	}
	return &runtimev1.GetStateResponse{Data: resp.Data, Etag: stateDeref(resp.ETag), Metadata: resp.Metadata}, nil
}

// GetBulkState reads several keys; per-key failures are in the items.
func (a *API) GetBulkState(ctx context.Context, in *runtimev1.GetBulkStateRequest) (*runtimev1.GetBulkStateResponse, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.GetBulkState(ctx, in)
	}
	resps, err := a.cfg.State.BulkGet(ctx, in.GetStoreName(), in.GetKeys(), in.GetMetadata(), int(in.GetParallelism()))
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	out := &runtimev1.GetBulkStateResponse{Items: make([]*runtimev1.BulkStateItem, len(resps))}
	for i, g := range resps {
		out.Items[i] = &runtimev1.BulkStateItem{Key: g.Key, Data: g.Data, Etag: stateDeref(g.ETag), Metadata: g.Metadata, Error: g.Error}
	}
	return out, nil
}

// SaveState writes items (see api.State.Save for atomicity).
func (a *API) SaveState(ctx context.Context, in *runtimev1.SaveStateRequest) (*emptypb.Empty, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.SaveState(ctx, in)
	}
	if err := a.cfg.State.CheckStore(in.GetStoreName(), ""); err != nil {
		return nil, apierr.GRPC(err)
	}
	reqs := make([]state.SetRequest, len(in.GetStates()))
	for i, it := range in.GetStates() {
		if it.GetKey() == "" {
			return nil, apierr.GRPC(apierr.MalformedRequest("state key cannot be empty"))
		}
		r, err := stateSetRequest(it)
		if err != nil {
			return nil, apierr.GRPC(err)
		}
		reqs[i] = r
	}
	if err := a.cfg.State.Save(ctx, in.GetStoreName(), reqs); err != nil {
		return nil, apierr.GRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// DeleteState removes one key.
func (a *API) DeleteState(ctx context.Context, in *runtimev1.DeleteStateRequest) (*emptypb.Empty, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.DeleteState(ctx, in)
	}
	err := a.cfg.State.Delete(ctx, in.GetStoreName(), state.DeleteRequest{
		Key:      in.GetKey(),
		ETag:     stateETag(in.GetEtag()),
		Metadata: in.GetMetadata(),
		Options:  stateOptions(in.GetOptions()),
	})
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// DeleteBulkState removes several keys.
func (a *API) DeleteBulkState(ctx context.Context, in *runtimev1.DeleteBulkStateRequest) (*emptypb.Empty, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.DeleteBulkState(ctx, in)
	}
	reqs := make([]state.DeleteRequest, len(in.GetStates()))
	for i, it := range in.GetStates() {
		reqs[i] = stateDeleteRequest(it)
	}
	if err := a.cfg.State.BulkDelete(ctx, in.GetStoreName(), reqs); err != nil {
		return nil, apierr.GRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// ExecuteStateTransaction applies upserts and deletes atomically.
func (a *API) ExecuteStateTransaction(ctx context.Context, in *runtimev1.ExecuteStateTransactionRequest) (*emptypb.Empty, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.ExecuteStateTransaction(ctx, in)
	}
	if err := a.cfg.State.CheckTransactional(in.GetStoreName(), ""); err != nil {
		return nil, apierr.GRPC(err)
	}
	req := state.TransactionRequest{Metadata: in.GetMetadata(), Operations: make([]state.Operation, len(in.GetOperations()))}
	for i, op := range in.GetOperations() {
		switch op.GetOperationType() {
		case "upsert":
			u, err := stateSetRequest(op.GetRequest())
			if err != nil {
				return nil, apierr.GRPC(err)
			}
			req.Operations[i].Upsert = &u
		case "delete":
			d := stateDeleteRequest(op.GetRequest())
			req.Operations[i].Delete = &d
		default:
			return nil, apierr.GRPC(apierr.StateOperationNotSupported(op.GetOperationType()))
		}
	}
	if err := a.cfg.State.Transact(ctx, in.GetStoreName(), req); err != nil {
		return nil, apierr.GRPC(err)
	}
	return &emptypb.Empty{}, nil
}

// QueryStateAlpha1 runs a state query.
func (a *API) QueryStateAlpha1(ctx context.Context, in *runtimev1.QueryStateRequest) (*runtimev1.QueryStateResponse, error) {
	if a.cfg.State == nil {
		return a.UnimplementedDaprServer.QueryStateAlpha1(ctx, in)
	}
	resp, err := a.cfg.State.Query(ctx, in.GetStoreName(), []byte(in.GetQuery()), in.GetMetadata())
	if err != nil {
		return nil, apierr.GRPC(err)
	}
	if len(resp.Results) == 0 {
		return &runtimev1.QueryStateResponse{}, nil
	}
	out := &runtimev1.QueryStateResponse{Results: make([]*runtimev1.QueryStateItem, len(resp.Results)), Token: resp.Token, Metadata: resp.Metadata}
	for i, it := range resp.Results {
		out.Results[i] = &runtimev1.QueryStateItem{Key: it.Key, Data: it.Data, Etag: stateDeref(it.ETag), Error: it.Error}
	}
	return out, nil
}
