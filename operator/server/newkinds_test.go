package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
)

// TestMCPServers: a sidecar lists its namespace's MCPServers scoped to it,
// with header secrets resolved as Dapr's operator sends them (base64) and
// the fields the operator does not read passed on as written; a server of
// another secret store is left for the sidecar; a new MCPServer reaches the
// update stream; another namespace is refused with Dapr's words.
func TestMCPServers(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "mcp-servers")
	if err := h.k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "mcp"}, Data: map[string][]byte{"token": []byte("t0ken")}}); err != nil {
		t.Fatal(err)
	}
	servers := []*v1alpha1.MCPServer{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "weather"}, Spec: v1alpha1.RawObject(`{"endpoint":{"streamableHTTP":{"url":"http://localhost:1","timeout":"5s","headers":[{"name":"x-token","secretKeyRef":{"name":"mcp","key":"token"}},{"name":"x-plain","value":"p"}]}},"ignoreErrors":true}`)},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "vaulted"}, Spec: v1alpha1.RawObject(`{"endpoint":{"sse":{"url":"http://localhost:2","auth":{"secretStore":"vault"},"headers":[{"name":"x-token","secretKeyRef":{"name":"mcp","key":"token"}}]}}}`)},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tool"}, Spec: v1alpha1.RawObject(`{"endpoint":{"stdio":{"command":"mcp-tool","env":[{"name":"TOKEN","secretKeyRef":{"name":"mcp","key":"token"}}]}}}`)},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing-only"}, Spec: v1alpha1.RawObject(`{"endpoint":{"stdio":{"command":"x"}}}`), Scopes: []string{"billing"}},
	}
	for _, m := range servers {
		if err := h.k.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	orders := h.dial(t, ns, "orders")
	var resp *operatorv1.ListMCPServersResponse
	eventually(t, func() (err error) {
		if resp, err = orders.ListMCPServers(ctx, &operatorv1.ListMCPServersRequest{Namespace: ns}); err != nil {
			return err
		}
		if got, want := names(t, resp.GetMcpServers()), []string{"tool", "vaulted", "weather"}; !slices.Equal(got, want) {
			return fmt.Errorf("orders got MCP servers %v, want %v", got, want)
		}
		return nil
	})
	b64 := base64.StdEncoding.EncodeToString([]byte("t0ken"))
	for _, b := range resp.GetMcpServers() {
		var m struct {
			Kind, APIVersion string
			Metadata         struct{ Name string }
			Spec             struct {
				Endpoint map[string]struct {
					Timeout string
					Headers []struct{ Name, Value string }
					Env     []struct{ Name, Value string }
				}
				IgnoreErrors bool
			}
		}
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if m.Kind != "MCPServer" || m.APIVersion != "dapr.io/v1alpha1" {
			t.Errorf("%s: kind %q apiVersion %q", m.Metadata.Name, m.Kind, m.APIVersion)
		}
		switch m.Metadata.Name {
		case "weather":
			e := m.Spec.Endpoint["streamableHTTP"]
			if e.Timeout != "5s" || !m.Spec.IgnoreErrors || len(e.Headers) != 2 || e.Headers[0].Value != b64 || e.Headers[1].Value != "p" {
				t.Errorf("weather sent as %s", b)
			}
		case "vaulted":
			if v := m.Spec.Endpoint["sse"].Headers[0].Value; v != "" {
				t.Errorf("a header of secret store vault was resolved by the operator: %q", v)
			}
		case "tool":
			if env := m.Spec.Endpoint["stdio"].Env; len(env) != 1 || env[0].Value != b64 {
				t.Errorf("stdio env sent as %s", b)
			}
		}
	}

	stream, err := orders.MCPServerUpdate(ctx, &operatorv1.MCPServerUpdateRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	h.waitSubscribed(t, "mcpservers", 1)
	if err := h.k.Create(ctx, &v1alpha1.MCPServer{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "late"}, Spec: v1alpha1.RawObject(`{"endpoint":{"sse":{"url":"http://localhost:3"}}}`)}); err != nil {
		t.Fatal(err)
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := names(t, [][]byte{ev.GetMcpServer()}); ev.GetType() != operatorv1.ResourceEventType_CREATED || got[0] != "late" {
		t.Errorf("event %v %v, want CREATED late", ev.GetType(), got)
	}

	_, err = h.dial(t, "elsewhere", "orders").ListMCPServers(ctx, &operatorv1.ListMCPServersRequest{Namespace: ns})
	if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "identity does not match requested namespace") {
		t.Errorf("another namespace: %v, want PermissionDenied", err)
	}
}

// TestWorkflowAccessPolicies: listed as stored, scoped to the app.
func TestWorkflowAccessPolicies(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "wf-policies")
	for _, p := range []*v1alpha1.WorkflowAccessPolicy{
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "open"}, Spec: v1alpha1.RawObject(`{"rules":[{"callers":[{"appID":"web"}],"workflows":[{"name":"*","operations":["schedule"]}]}]}`)},
		{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "billing"}, Scopes: []string{"billing"}},
	} {
		if err := h.k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	orders := h.dial(t, ns, "orders")
	eventually(t, func() error {
		resp, err := orders.ListWorkflowAccessPolicy(ctx, &operatorv1.ListWorkflowAccessPolicyRequest{Namespace: ns})
		if err != nil {
			return err
		}
		if got := names(t, resp.GetPolicies()); !slices.Equal(got, []string{"open"}) {
			return fmt.Errorf("orders got policies %v, want [open]", got)
		}
		if s := string(resp.GetPolicies()[0]); !strings.Contains(s, `"operations":["schedule"]`) {
			return fmt.Errorf("policy sent as %s", s)
		}
		return nil
	})
}

// TestConfigurationHeaderSecrets: a Configuration's exporter header that
// references a Secret reaches the sidecar holding the secret's text, as
// Dapr's operator sends it; a reference without a key is an error.
func TestConfigurationHeaderSecrets(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "config-secrets")
	if err := h.k.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "otel"}, Data: map[string][]byte{"token": []byte("api-key-1")}}); err != nil {
		t.Fatal(err)
	}
	for name, spec := range map[string]string{
		"tracing": `{"tracing":{"samplingRate":"1","otel":{"endpointAddress":"localhost:4317","headers":[{"name":"x-plain","value":"p"},{"name":"x-api-key","secretKeyRef":{"name":"otel","key":"token"}}]}}}`,
		"nokey":   `{"tracing":{"otel":{"headers":[{"name":"x-api-key","secretKeyRef":{"name":"otel"}}]}}}`,
	} {
		if err := h.k.Create(ctx, &v1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.RawObject(spec)}); err != nil {
			t.Fatal(err)
		}
	}
	orders := h.dial(t, ns, "orders")
	eventually(t, func() error {
		resp, err := orders.GetConfiguration(ctx, &operatorv1.GetConfigurationRequest{Namespace: ns, Name: "tracing"})
		if err != nil {
			return err
		}
		var c struct {
			Spec struct {
				Tracing struct {
					SamplingRate string
					Otel         struct {
						Headers []struct{ Name, Value string }
					}
				}
			}
		}
		if err := json.Unmarshal(resp.GetConfiguration(), &c); err != nil {
			return err
		}
		hs := c.Spec.Tracing.Otel.Headers
		if c.Spec.Tracing.SamplingRate != "1" || len(hs) != 2 || hs[0].Value != "p" || hs[1].Value != "api-key-1" {
			return fmt.Errorf("configuration sent as %s", resp.GetConfiguration())
		}
		return nil
	})
	_, err := orders.GetConfiguration(ctx, &operatorv1.GetConfigurationRequest{Namespace: ns, Name: "nokey"})
	if err == nil || !strings.Contains(err.Error(), "secret key is required for header x-api-key") {
		t.Errorf("a header secret without a key: %v", err)
	}
}
