package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tandemrun/tandem/observe/otlptest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// TestTracingAcrossSidecars sends one invocation with a traceparent
// through two sidecars to an app and checks that both sidecars export
// spans of ONE trace, rooted at the caller's span and linked hop by hop,
// and that the app received a traceparent of that trace. The sidecars
// have both an OTLP and a Zipkin endpoint, as Dapr allows: each must get
// the whole chain. Plaintext the sidecars speak Dapr's gRPC; with mTLS
// they speak the lean transport, which must give the same spans and
// metrics.
func TestTracingAcrossSidecars(t *testing.T) {
	t.Run("gRPC", func(t *testing.T) { testTracingAcrossSidecars(t, false) })
	t.Run("lean transport", func(t *testing.T) { testTracingAcrossSidecars(t, true) })
}

func testTracingAcrossSidecars(t *testing.T, mtls bool) {
	rcv := otlptest.Start(t)
	zipkin := otlptest.StartZipkin(t)
	gotTP := make(chan string, 4)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotTP <- r.Header.Get("traceparent")
		w.WriteHeader(http.StatusOK)
	}))
	defer app.Close()
	u, _ := url.Parse(app.URL)
	appPort, _ := strconv.Atoi(u.Port())

	registry := filepath.Join(t.TempDir(), "registry.db")
	spec := fmt.Sprintf(`  tracing:
    samplingRate: "1"
    otel:
      endpointAddress: %s
      protocol: grpc
      isSecure: false
    zipkin:
      endpointAddress: %s
`, rcv.Addr(), zipkin.URL())
	// Export quickly instead of the batch processor's default 5 s.
	env := []string{"OTEL_BSP_SCHEDULE_DELAY=100"}
	var sentry *framework.Sentry
	if mtls {
		sentry = framework.StartSentry(t, bins, framework.SentryOptions{})
	}
	callee := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "callee", AppPort: appPort, Env: env, Sentry: sentry,
		Args: []string{"--config", framework.WriteConfig(t, registry, spec)},
	})
	caller := framework.StartSidecar(t, bins, framework.SidecarOptions{
		AppID: "caller", Env: env, Sentry: sentry,
		Args: []string{"--config", framework.WriteConfig(t, registry, spec)},
	})

	const (
		traceID = "0af7651916cd43dd8448eb211c80319c"
		rootID  = "b7ad6b7169203331"
	)
	var resp *http.Response
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodPost, caller.HTTPURL()+"/v1.0/invoke/callee/method/orders", strings.NewReader("{}"))
		req.Header.Set("traceparent", "00-"+traceID+"-"+rootID+"-01")
		var err error
		resp, err = http.DefaultClient.Do(req)
		if err == nil && resp.StatusCode == http.StatusOK {
			resp.Body.Close()
			break
		}
		if err == nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("invoke through the caller sidecar never succeeded (last: %v, %v)\n%s", resp, err, caller.Output())
		}
		time.Sleep(200 * time.Millisecond) // the callee may not be resolvable yet
	}
	// Earlier attempts that failed to resolve also made spans of this trace;
	// the successful one is the last traceparent the app saw.
	var appTP string
	for len(gotTP) > 0 || appTP == "" {
		appTP = <-gotTP
	}
	parts := strings.Split(appTP, "-")
	if len(parts) != 4 || parts[1] != traceID {
		t.Fatalf("app received traceparent %q, want trace %s", appTP, traceID)
	}

	checkChain(t, "otlp", rcv, traceID, parts[2], rootID)
	checkChain(t, "zipkin", zipkin, traceID, parts[2], rootID)

	// The same calls are in the caller's metrics, with the path label of
	// Dapr 1.18's default (increasedCardinality on).
	mresp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", caller.MetricsPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	var sawCount, sawSent bool
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "dapr_http_server_request_count{") {
			sawCount = sawCount || strings.Contains(line, `method="POST"`) && strings.Contains(line, `status="200"`) &&
				strings.Contains(line, `path="/v1.0/invoke/callee/method/orders"`)
		}
		sawSent = sawSent || strings.HasPrefix(line, `dapr_runtime_service_invocation_req_sent_total{app_id="caller",dst_app_id="callee",type="unary"}`)
	}
	if !sawCount || !sawSent {
		t.Errorf("caller metrics lack the invocation (request_count POST 200 with its path: %v, req_sent_total: %v):\n%s", sawCount, sawSent, body)
	}
	// And in the callee's, under the method the call stands for.
	mresp, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", callee.MetricsPort))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{
		`dapr_runtime_service_invocation_req_recv_total{app_id="callee",src_app_id="caller"}`,
		`dapr_runtime_service_invocation_res_sent_total{app_id="callee",dst_app_id="caller",status="200"}`,
		`dapr_grpc_io_server_completed_rpcs{app_id="callee",grpc_server_method="/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream",grpc_server_status="OK"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("callee metrics lack %s:\n%s", want, body)
		}
	}
	if mtls && strings.Contains(caller.Output(), "offers only h2") {
		t.Errorf("the caller fell back to gRPC with a Tandem callee:\n%s", caller.Output())
	}
}

// checkChain waits until rcv has the spans of traceID from the app's span
// up to root
// and checks each hop: callee app call, callee server, caller client,
// caller server (parent: the caller's root). Names are compared ignoring
// case: Zipkin lower-cases them.
func checkChain(t *testing.T, exporter string, rcv *otlptest.Receiver, traceID, appSpan, rootID string) {
	t.Helper()
	var spans []otlptest.Span
	var byID map[string]otlptest.Span
	for end := time.Now().Add(15 * time.Second); ; {
		spans = rcv.Trace(traceID)
		byID = map[string]otlptest.Span{}
		for _, s := range spans {
			byID[s.SpanID] = s
		}
		if chainToRoot(byID, appSpan, rootID) >= 4 {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("%s: no connected trace from the app's span %s to the root %s; spans: %+v", exporter, appSpan, rootID, spans)
		}
		time.Sleep(100 * time.Millisecond)
	}

	want := []struct{ service, name string }{
		{"callee", "CallApp/callee/orders"},
		{"callee", "CallLocal/callee/orders"},
		// HTTP API invocations go out as CallLocalStream, as daprd's.
		{"caller", "/dapr.proto.internals.v1.ServiceInvocation/CallLocalStream"},
		{"caller", "CallLocal/callee/orders"},
	}
	id := appSpan
	for i, w := range want {
		s := byID[id]
		if s.Service != w.service || !strings.EqualFold(s.Name, w.name) {
			t.Errorf("%s hop %d: span %s/%q, want %s/%q", exporter, i, s.Service, s.Name, w.service, w.name)
		}
		id = s.ParentSpanID
	}
	if id != rootID {
		t.Errorf("%s: the caller's server span has parent %s, want the incoming traceparent's span %s", exporter, id, rootID)
	}
}

// chainToRoot counts the spans from id up to root (exclusive), or -1 if
// the chain breaks before reaching it.
func chainToRoot(byID map[string]otlptest.Span, id, root string) int {
	n := 0
	for id != root {
		s, ok := byID[id]
		if !ok || n > 16 {
			return -1
		}
		n++
		id = s.ParentSpanID
	}
	return n
}
