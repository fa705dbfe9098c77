package grpcapi

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	secretsbuiltin "github.com/tandemrun/tandem/components/secretstores/builtin"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/components/state/inmemory"
	"github.com/tandemrun/tandem/proxy/api"
)

// plainStore has no transactions, bulk or query.
type plainStore struct{ state.Store }

// stateFixture starts the gRPC API over real components: state stores
// "statestore" (in-memory) and "plain", secret store "secretstore" whose
// secret "denied" is refused by scope.
func stateFixture(t *testing.T) (runtimev1.DaprClient, *components.Registry[state.Store]) {
	t.Helper()
	secretsFile := filepath.Join(t.TempDir(), "secrets.json")
	if err := os.WriteFile(secretsFile, []byte(`{"pw":"s3cr3t","denied":"hidden"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	comps := []components.Component{
		{Name: "statestore", Type: inmemory.Type, InitTimeout: components.DefaultInitTimeout},
		{Name: "plain", Type: "state.plain", InitTimeout: components.DefaultInitTimeout},
		{Name: "secretstore", Type: "secretstores.local.file", InitTimeout: components.DefaultInitTimeout,
			Metadata: []components.MetadataItem{{Name: "secretsFile", Value: secretsFile, HasValue: true}}},
	}
	newFn, types := components.FactoryFromMap(map[string]func() state.Store{
		inmemory.Type: inmemory.NewQueryable, // the query API tests need a querying store
		"state.plain": func() state.Store { return plainStore{inmemory.New()} },
	})
	kind := components.Kind[state.Store]{Category: "state", Types: types, New: newFn,
		Init:  func(ctx context.Context, s state.Store, md components.Metadata) error { return s.Init(ctx, md) },
		Close: func(s state.Store) error { return s.Close() }}
	env := components.Env{AppID: "myapp"}
	states := components.NewManager(kind, components.ManagerOptions{Resolve: env.Resolve})
	secrets := components.NewManager[secretstores.SecretStore](secretsbuiltin.Kind(), components.ManagerOptions{Resolve: env.Resolve})
	t.Cleanup(func() { _ = states.Close(); _ = secrets.Close() })
	states.Apply(comps)
	secrets.Apply(comps)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := states.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if err := secrets.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	client := start(t, Config{
		State: api.NewState(api.StateConfig{Registry: states.Registry(), AppID: "myapp"}),
		Secrets: api.NewSecrets(api.SecretsConfig{Registry: secrets.Registry(),
			Allowed: func(_, key string) bool { return key != "denied" }}),
	})
	return client, states.Registry()
}

func wantCode(t *testing.T, err error, code codes.Code, msg string) {
	t.Helper()
	st := status.Convert(err)
	if st.Code() != code {
		t.Fatalf("code = %v (%q), want %v", st.Code(), st.Message(), code)
	}
	// Tandem's advice travels in the details, beside daprd's message.
	if !strings.Contains(st.Message(), msg) && !strings.Contains(fmt.Sprint(st.Details()), msg) {
		t.Fatalf("message = %q (details %v), want it to contain %q", st.Message(), st.Details(), msg)
	}
}

func TestGRPCState(t *testing.T) {
	c, reg := stateFixture(t)
	ctx := context.Background()
	_, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{
		{Key: "bin", Value: []byte{0xff, 0x00, 'x'}},
		{Key: "doc", Value: []byte(`{"a":1}`), Metadata: map[string]string{"contentType": "application/json", "ttlInSeconds": "100"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	// Stored prefixed, binary unless contentType says JSON.
	inst, _ := reg.Ready("statestore")
	if r, _ := inst.Get(ctx, &state.GetRequest{Key: "myapp||bin"}); r == nil || string(r.Data) != "\xff\x00x" {
		t.Fatalf("stored myapp||bin = %+v", r)
	}
	got, err := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "doc", Consistency: commonv1.StateOptions_CONSISTENCY_STRONG})
	if err != nil {
		t.Fatal(err)
	}
	if string(got.GetData()) != `{"a":1}` || got.GetEtag() == "" || got.GetMetadata()["ttlExpireTime"] == "" {
		t.Fatalf("get doc = %v", got)
	}
	missing, err := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "nope"})
	if err != nil || len(missing.GetData()) != 0 || missing.GetEtag() != "" {
		t.Fatalf("missing = %v, %v", missing, err)
	}

	// ETags: mismatch is Aborted and writes nothing.
	_, err = c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{
		{Key: "doc", Value: []byte("2"), Etag: &commonv1.Etag{Value: "stale"}}}})
	wantCode(t, err, codes.Aborted, "failed saving state in state store statestore")
	_, err = c.DeleteState(ctx, &runtimev1.DeleteStateRequest{StoreName: "statestore", Key: "doc", Etag: &commonv1.Etag{Value: "stale"},
		Options: &commonv1.StateOptions{Concurrency: commonv1.StateOptions_CONCURRENCY_FIRST_WRITE}})
	wantCode(t, err, codes.Aborted, "failed deleting state with key doc")
	_, err = c.DeleteState(ctx, &runtimev1.DeleteStateRequest{StoreName: "statestore", Key: "doc", Etag: &commonv1.Etag{Value: got.GetEtag()}})
	if err != nil {
		t.Fatal(err)
	}

	bulk, err := c.GetBulkState(ctx, &runtimev1.GetBulkStateRequest{StoreName: "statestore", Keys: []string{"bin", "doc"}, Parallelism: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(bulk.GetItems()) != 2 || bulk.GetItems()[0].GetKey() != "bin" || string(bulk.GetItems()[0].GetData()) != "\xff\x00x" || len(bulk.GetItems()[1].GetData()) != 0 {
		t.Fatalf("bulk = %v", bulk)
	}

	_, err = c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "statestore", Operations: []*runtimev1.TransactionalStateOperation{
		{OperationType: "upsert", Request: &commonv1.StateItem{Key: "t1", Value: []byte(`{"city":"Oslo"}`), Metadata: map[string]string{"contentType": "application/json"}}},
		{OperationType: "delete", Request: &commonv1.StateItem{Key: "bin"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "statestore", Operations: []*runtimev1.TransactionalStateOperation{
		{OperationType: "upsert", Request: &commonv1.StateItem{Key: "t2", Value: []byte("1")}},
		{OperationType: "delete", Request: &commonv1.StateItem{Key: "t1", Etag: &commonv1.Etag{Value: "stale"}}},
	}})
	wantCode(t, err, codes.Internal, "error while executing state transaction")
	if r, _ := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "t2"}); len(r.GetData()) != 0 {
		t.Fatal("failed transaction wrote t2")
	}

	q, err := c.QueryStateAlpha1(ctx, &runtimev1.QueryStateRequest{StoreName: "statestore", Query: `{"filter":{"EQ":{"city":"Oslo"}}}`})
	if err != nil {
		t.Fatal(err)
	}
	if len(q.GetResults()) != 1 || q.GetResults()[0].GetKey() != "t1" || q.GetResults()[0].GetEtag() == "" {
		t.Fatalf("query = %v", q)
	}

	_, err = c.DeleteBulkState(ctx, &runtimev1.DeleteBulkStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{{Key: "t1"}, {Key: "nope"}}})
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "statestore", Key: "t1"}); len(r.GetData()) != 0 {
		t.Fatal("bulk delete kept t1")
	}
}

func TestGRPCStateErrors(t *testing.T) {
	c, _ := stateFixture(t)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
		code codes.Code
		msg  string
	}{
		{"unknown store", func() error {
			_, err := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "nostore", Key: "a"})
			return err
		}, codes.InvalidArgument, "state store nostore is not found"},
		{"illegal key", func() error {
			_, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{{Key: "a||b", Value: []byte("1")}}})
			return err
		}, codes.InvalidArgument, "can't contain '||'"},
		{"empty key", func() error {
			_, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{{Value: []byte("1")}}})
			return err
		}, codes.InvalidArgument, "state key cannot be empty"},
		{"empty key, unknown store", func() error {
			// daprd looks the store up before it reads the items.
			_, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "nostore", States: []*commonv1.StateItem{{Value: []byte("1")}}})
			return err
		}, codes.InvalidArgument, "state store nostore is not found"},
		{"json content type, not json", func() error {
			_, err := c.SaveState(ctx, &runtimev1.SaveStateRequest{StoreName: "statestore", States: []*commonv1.StateItem{{Key: "a", Value: []byte("{"), Metadata: map[string]string{"contentType": "application/json"}}}})
			return err
		}, codes.InvalidArgument, "not valid JSON"},
		{"bulk get illegal key", func() error {
			_, err := c.GetBulkState(ctx, &runtimev1.GetBulkStateRequest{StoreName: "statestore", Keys: []string{"a||b"}})
			return err
		}, codes.InvalidArgument, "can't contain"},
		{"unknown operation", func() error {
			_, err := c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "statestore", Operations: []*runtimev1.TransactionalStateOperation{{OperationType: "merge", Request: &commonv1.StateItem{Key: "a"}}}})
			return err
		}, codes.Unimplemented, "operation type merge not supported"},
		{"not transactional", func() error {
			_, err := c.ExecuteStateTransaction(ctx, &runtimev1.ExecuteStateTransactionRequest{StoreName: "plain"})
			return err
		}, codes.Unimplemented, "doesn't support transactions"},
		{"not a querier", func() error {
			_, err := c.QueryStateAlpha1(ctx, &runtimev1.QueryStateRequest{StoreName: "plain", Query: `{}`})
			return err
		}, codes.Internal, "does not support querying"},
		{"bad query", func() error {
			_, err := c.QueryStateAlpha1(ctx, &runtimev1.QueryStateRequest{StoreName: "statestore", Query: `{`})
			return err
		}, codes.Internal, "query failed"},
		{"secret denied", func() error {
			_, err := c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "secretstore", Key: "denied"})
			return err
		}, codes.PermissionDenied, "access denied by policy"},
		{"secret store unknown", func() error {
			_, err := c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "nostore", Key: "pw"})
			return err
		}, codes.InvalidArgument, "failed finding secret store with key nostore"},
		{"secret missing", func() error {
			_, err := c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "secretstore", Key: "nope"})
			return err
		}, codes.Internal, "failed getting secret with key nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { wantCode(t, tt.call(), tt.code, tt.msg) })
	}
}

func TestGRPCSecrets(t *testing.T) {
	c, _ := stateFixture(t)
	ctx := context.Background()
	s, err := c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "secretstore", Key: "pw"})
	if err != nil || s.GetData()["pw"] != "s3cr3t" {
		t.Fatalf("secret = %v, %v", s, err)
	}
	b, err := c.GetBulkSecret(ctx, &runtimev1.GetBulkSecretRequest{StoreName: "secretstore"})
	if err != nil {
		t.Fatal(err)
	}
	if b.GetData()["pw"].GetSecrets()["pw"] != "s3cr3t" || b.GetData()["denied"] != nil {
		t.Fatalf("bulk = %v", b)
	}
}

func TestGRPCStateUnimplementedWithoutAPI(t *testing.T) {
	c := start(t, Config{})
	ctx := context.Background()
	_, err := c.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "s", Key: "a"})
	wantCode(t, err, codes.Unimplemented, "")
	_, err = c.GetSecret(ctx, &runtimev1.GetSecretRequest{StoreName: "s", Key: "a"})
	wantCode(t, err, codes.Unimplemented, "")
}
