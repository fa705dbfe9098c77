package pluggable

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strconv"
	"sync"
	"testing"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// server is a pluggable state store as a third party writes one: a map
// with ETags (a counter), the etag statuses daprd's protocol defines, and
// a transaction limit of two operations.
type server struct {
	compv1.UnimplementedStateStoreServer
	compv1.UnimplementedTransactionalStateStoreServer
	compv1.UnimplementedTransactionalStoreMultiMaxSizeServer
	mu   sync.Mutex
	data map[string]string
	tags map[string]int
}

func (s *server) Init(context.Context, *compv1.InitRequest) (*compv1.InitResponse, error) {
	return &compv1.InitResponse{}, nil
}

func (s *server) Features(context.Context, *compv1.FeaturesRequest) (*compv1.FeaturesResponse, error) {
	return &compv1.FeaturesResponse{Features: []string{"ETAG", "TRANSACTIONAL"}}, nil
}

func etagStatus(c codes.Code) error {
	st, _ := status.New(c, "etag").WithDetails(&errdetails.BadRequest{FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "etag", Description: "etag mismatch"}}})
	return st.Err()
}

func (s *server) set(r *compv1.SetRequest) error {
	if e := r.GetEtag(); e != nil {
		n, err := strconv.Atoi(e.GetValue())
		if err != nil {
			return etagStatus(codes.InvalidArgument)
		}
		if n != s.tags[r.GetKey()] {
			return etagStatus(codes.FailedPrecondition)
		}
	}
	s.data[r.GetKey()] = string(r.GetValue())
	s.tags[r.GetKey()]++
	return nil
}

func (s *server) Set(_ context.Context, r *compv1.SetRequest) (*compv1.SetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &compv1.SetResponse{}, s.set(r)
}

func (s *server) Get(_ context.Context, r *compv1.GetRequest) (*compv1.GetResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.data[r.GetKey()]
	if !ok {
		return &compv1.GetResponse{}, nil
	}
	return &compv1.GetResponse{Data: []byte(v), Etag: &compv1.Etag{Value: strconv.Itoa(s.tags[r.GetKey()])}}, nil
}

func (s *server) Delete(_ context.Context, r *compv1.DeleteRequest) (*compv1.DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.GetKey() == "custom" {
		st, _ := status.New(codes.ResourceExhausted, "quota").WithDetails(&errdetails.ErrorInfo{Reason: "MY_REASON", Domain: "example.com"})
		return nil, st.Err()
	}
	delete(s.data, r.GetKey())
	return &compv1.DeleteResponse{}, nil
}

func (s *server) Transact(_ context.Context, r *compv1.TransactionalStateRequest) (*compv1.TransactionalStateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, op := range r.GetOperations() {
		if set := op.GetSet(); set != nil {
			if err := s.set(set); err != nil {
				return nil, err
			}
		} else {
			delete(s.data, op.GetDelete().GetKey())
		}
	}
	return &compv1.TransactionalStateResponse{}, nil
}

func (s *server) MultiMaxSize(context.Context, *compv1.MultiMaxSizeRequest) (*compv1.MultiMaxSizeResponse, error) {
	return &compv1.MultiMaxSizeResponse{MaxSize: 2}, nil
}

func TestPluggableState(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "mystore.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	impl := &server{data: map[string]string{}, tags: map[string]int{}}
	compv1.RegisterStateStoreServer(srv, impl)
	compv1.RegisterTransactionalStateStoreServer(srv, impl)
	compv1.RegisterTransactionalStoreMultiMaxSizeServer(srv, impl)
	go srv.Serve(lis)
	defer srv.Stop()

	newStore := Fallback(func(string) (state.Store, bool) { return nil, false }, components.SocketsFolder(dir), nil)
	if _, ok := newStore("state.other"); ok {
		t.Fatal("a type without a socket was taken")
	}
	st, ok := newStore("state.mystore")
	if !ok {
		t.Fatal("socket not found")
	}
	s := st.(*Store)
	ctx := context.Background()
	if err := s.Init(ctx, components.Metadata{Name: "mystore"}); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !state.HasFeature(s.Features(), state.FeatureTransactional) {
		t.Fatalf("features %v", s.Features())
	}
	if err := s.Set(ctx, &state.SetRequest{Key: "a", Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, &state.GetRequest{Key: "a"})
	if err != nil || string(got.Data) != "1" || got.ETag == nil || *got.ETag != "1" {
		t.Fatalf("get: %+v %v", got, err)
	}
	bad := "7"
	if err := s.Set(ctx, &state.SetRequest{Key: "a", Value: []byte("2"), ETag: &bad}); !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("stale etag: %v", err)
	}
	junk := "x"
	if err := s.Set(ctx, &state.SetRequest{Key: "a", Value: []byte("2"), ETag: &junk}); !errors.Is(err, state.ErrETagInvalid) {
		t.Fatalf("invalid etag: %v", err)
	}
	// A store's own error keeps its status and details.
	err = s.Delete(ctx, &state.DeleteRequest{Key: "custom"})
	if st, ok := status.FromError(err); !ok || st.Code() != codes.ResourceExhausted || len(st.Details()) != 1 {
		t.Fatalf("custom error: %v", err)
	}
	if err := s.Multi(ctx, &state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: "b", Value: []byte("b")}}, {Delete: &state.DeleteRequest{Key: "a"}},
	}}); err != nil {
		t.Fatal(err)
	}
	if n := s.MultiMaxSize(); n != 2 {
		t.Fatalf("MultiMaxSize %d", n)
	}
	res, err := s.BulkGet(ctx, []state.GetRequest{{Key: "a"}, {Key: "b"}})
	if err != nil || len(res) != 2 || res[0].Data != nil || string(res[1].Data) != "b" {
		t.Fatalf("bulk get on a store without it (one Get per key): %+v %v", res, err)
	}
}
