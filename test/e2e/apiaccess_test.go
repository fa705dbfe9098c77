package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestAPIAllowlist runs a sidecar whose Configuration enables only service
// invocation over HTTP and the state API over gRPC, and checks daprd's
// answers: allowed calls work, a disabled HTTP API falls through to
// invocation (404 ERR_DIRECT_INVOKE without an app ID; without the
// allowlist these paths answer 200 or a state-store error), health checks
// always answer, and a disabled gRPC method is Unimplemented.
func TestAPIAllowlist(t *testing.T) {
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "app saw "+r.URL.Path)
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	appPort, _ := strconv.Atoi(u.Port())

	registry := filepath.Join(t.TempDir(), "r.db")
	const spec = `  api:
    allowed:
    - name: invoke
      version: v1.0
      protocol: http
    - name: state
      version: v1
      protocol: grpc
`
	sc := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "apiacc", AppPort: appPort, Registry: registry,
		Args: []string{"--config", framework.WriteConfig(t, registry, spec)},
	})

	get := func(t *testing.T, path string) (int, string) {
		t.Helper()
		resp, err := http.Get(sc.HTTPURL() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	t.Run("invoke allowed", func(t *testing.T) {
		code, body := get(t, "/v1.0/invoke/apiacc/method/hello")
		if code != 200 || body != "app saw /hello" {
			t.Fatalf("invoke: %d %q, want 200 from the app", code, body)
		}
	})
	for _, p := range []string{"/v1.0/state/x/k", "/v1.0/metadata", "/v1.0//secrets/s/k"} {
		t.Run("refused "+p, func(t *testing.T) {
			code, body := get(t, p)
			var e struct{ ErrorCode, Message string }
			_ = json.Unmarshal([]byte(body), &e)
			if code != 404 || e.ErrorCode != "ERR_DIRECT_INVOKE" {
				t.Fatalf("%s: %d %q, want daprd's 404 ERR_DIRECT_INVOKE", p, code, body)
			}
		})
	}
	t.Run("healthz always", func(t *testing.T) {
		if code, body := get(t, "/v1.0/healthz"); code != 204 {
			t.Fatalf("healthz: %d %q, want 204", code, body)
		}
	})

	conn, err := grpc.NewClient(sc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtimev1.NewDaprClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	t.Run("grpc refused", func(t *testing.T) {
		_, err := client.GetMetadata(ctx, &runtimev1.GetMetadataRequest{})
		if st := status.Convert(err); st.Code() != codes.Unimplemented || st.Message() != "Not Implemented" {
			t.Fatalf("GetMetadata: %v, want Unimplemented \"Not Implemented\"", err)
		}
	})
	t.Run("grpc allowed", func(t *testing.T) {
		_, err := client.GetState(ctx, &runtimev1.GetStateRequest{StoreName: "nostore", Key: "k"})
		if st := status.Convert(err); st.Code() == codes.Unimplemented {
			t.Fatalf("GetState refused by the allowlist: %v", err)
		}
	})
}
