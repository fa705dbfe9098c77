package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	operatorv1 "github.com/dapr/dapr/pkg/proto/operator/v1"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tandemrun/tandem/operator/api/v1alpha1"
	"github.com/tandemrun/tandem/operator/api/v2alpha1"
)

func component(ns, name string, scopes []string, md ...v1alpha1.NameValuePair) *v1alpha1.Component {
	if md == nil {
		md = []v1alpha1.NameValuePair{} // the CRD requires spec.metadata
	}
	return &v1alpha1.Component{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       v1alpha1.ComponentSpec{Type: "state.redis", Version: "v1", Metadata: md},
		Scopes:     scopes,
	}
}

func names(t *testing.T, items [][]byte) []string {
	t.Helper()
	var out []string
	for _, b := range items {
		var m metav1.PartialObjectMetadata
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Name)
	}
	slices.Sort(out)
	return out
}

// TestListComponents: a sidecar gets its namespace's components scoped to
// it, with secretKeyRefs resolved from the namespace's Secrets as Dapr's
// operator sends them (base64), and another namespace's sidecar is refused.
func TestListComponents(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "list-components")
	other := h.namespace(t, "list-components-other")
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "redis"}, Data: map[string][]byte{"password": []byte("s3cret")}}
	if err := h.k.Create(ctx, secret); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*v1alpha1.Component{
		component(ns, "everyone", nil, v1alpha1.NameValuePair{Name: "redisHost", Value: v1alpha1.JSONString("localhost:6379")}),
		component(ns, "orders-only", []string{"orders"},
			v1alpha1.NameValuePair{Name: "redisPassword", SecretKeyRef: v1alpha1.SecretKeyRef{Name: "redis", Key: "password"}}),
		component(ns, "billing-only", []string{"billing"}),
		component(other, "elsewhere", nil),
	} {
		if err := h.k.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	orders := h.dial(t, ns, "orders")
	var resp *operatorv1.ListComponentResponse
	eventually(t, func() (err error) {
		if resp, err = orders.ListComponents(ctx, &operatorv1.ListComponentsRequest{Namespace: ns}); err != nil {
			return err
		}
		if got, want := names(t, resp.GetComponents()), []string{"everyone", "orders-only"}; !slices.Equal(got, want) {
			return fmt.Errorf("orders got components %v, want %v", got, want)
		}
		return nil
	})
	for _, b := range resp.GetComponents() {
		var c v1alpha1.Component
		if err := json.Unmarshal(b, &c); err != nil {
			t.Fatal(err)
		}
		if c.APIVersion != "dapr.io/v1alpha1" || c.Kind != "Component" {
			t.Errorf("%s: apiVersion %q kind %q", c.Name, c.APIVersion, c.Kind)
		}
		if c.Name != "orders-only" {
			continue
		}
		want := base64.StdEncoding.EncodeToString([]byte("s3cret"))
		if got := c.Spec.Metadata[0].Value.String(); got != want {
			t.Errorf("secretKeyRef resolved to %q, want %q (base64 of the Secret's value)", got, want)
		}
	}

	_, err := h.dial(t, other, "orders").ListComponents(ctx, &operatorv1.ListComponentsRequest{Namespace: ns})
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a sidecar of %s listing %s: %v, want PermissionDenied", other, ns, err)
	}
}

// TestComponentUpdates: the stream reports an update, a component entering
// the app's scope as CREATED, leaving it as DELETED, and a deletion.
func TestComponentUpdates(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "component-updates")
	stream, err := h.dial(t, ns, "orders").ComponentUpdate(ctx, &operatorv1.ComponentUpdateRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	h.waitSubscribed(t, "components", 1)
	// Created after the stream opened, so every change is an event on it.
	shared := component(ns, "shared", nil, v1alpha1.NameValuePair{Name: "v", Value: v1alpha1.JSONString("1")})
	scoped := component(ns, "scoped", []string{"billing"})
	for _, c := range []*v1alpha1.Component{shared, scoped} {
		if err := h.k.Create(ctx, c); err != nil {
			t.Fatal(err)
		}
	}

	next := func(wantType operatorv1.ResourceEventType, wantName string) v1alpha1.Component {
		t.Helper()
		ev, err := stream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		var c v1alpha1.Component
		if err := json.Unmarshal(ev.GetComponent(), &c); err != nil {
			t.Fatal(err)
		}
		if ev.GetType() != wantType || c.Name != wantName {
			t.Fatalf("got %s %s, want %s %s", ev.GetType(), c.Name, wantType, wantName)
		}
		return c
	}

	next(operatorv1.ResourceEventType_CREATED, "shared")
	shared.Spec.Metadata[0].Value = v1alpha1.JSONString("2")
	if err := h.k.Update(ctx, shared); err != nil {
		t.Fatal(err)
	}
	if c := next(operatorv1.ResourceEventType_UPDATED, "shared"); c.Spec.Metadata[0].Value.String() != "2" {
		t.Fatalf("updated value %s, want 2", c.Spec.Metadata[0].Value)
	}
	scoped.Scopes = []string{"billing", "orders"}
	if err := h.k.Update(ctx, scoped); err != nil {
		t.Fatal(err)
	}
	next(operatorv1.ResourceEventType_CREATED, "scoped")
	scoped.Scopes = []string{"billing"}
	if err := h.k.Update(ctx, scoped); err != nil {
		t.Fatal(err)
	}
	next(operatorv1.ResourceEventType_DELETED, "scoped")
	if err := h.k.Delete(ctx, shared); err != nil {
		t.Fatal(err)
	}
	next(operatorv1.ResourceEventType_DELETED, "shared")

	foreign, err := h.dial(t, "component-updates-elsewhere", "orders").ComponentUpdate(ctx, &operatorv1.ComponentUpdateRequest{Namespace: ns})
	if err == nil {
		_, err = foreign.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Fatalf("a foreign namespace's stream: %v, want PermissionDenied", err)
	}
}

// TestSubscriptionsBothVersions: v1alpha1 and v2alpha1 Subscriptions are
// served as v2alpha1, a v1alpha1 route as routes.default, scoped.
func TestSubscriptionsBothVersions(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "subscriptions")
	v1 := &v1alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "old"},
		Spec: v1alpha1.SubscriptionSpec{Pubsubname: "pubsub", Topic: "a", Route: "/a"}}
	v2 := &v2alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "new"},
		Spec: v2alpha1.SubscriptionSpec{Pubsubname: "pubsub", Topic: "b", Routes: v2alpha1.Routes{
			Rules: []v2alpha1.Rule{{Match: `event.type == "x"`, Path: "/x"}}, Default: "/b"}}}
	hidden := &v2alpha1.Subscription{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "hidden"}, Scopes: []string{"billing"},
		Spec: v2alpha1.SubscriptionSpec{Pubsubname: "pubsub", Topic: "c", Routes: v2alpha1.Routes{Default: "/c"}}}
	if err := h.k.Create(ctx, v1); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*v2alpha1.Subscription{v2, hidden} {
		if err := h.k.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	orders := h.dial(t, ns, "orders")
	got := map[string]v2alpha1.Subscription{}
	eventually(t, func() error {
		resp, err := orders.ListSubscriptionsV2(ctx, &operatorv1.ListSubscriptionsRequest{Namespace: ns})
		if err != nil {
			return err
		}
		clear(got)
		for _, b := range resp.GetSubscriptions() {
			var s v2alpha1.Subscription
			if err := json.Unmarshal(b, &s); err != nil {
				return err
			}
			got[s.Name] = s
		}
		if len(got) != 2 || got["old"].Spec.Routes.Default != "/a" || len(got["new"].Spec.Routes.Rules) != 1 || got["new"].Spec.Routes.Rules[0].Path != "/x" {
			return fmt.Errorf("subscriptions %+v", got)
		}
		return nil
	})
	if got["old"].APIVersion != "dapr.io/v2alpha1" {
		t.Errorf("apiVersion %q, want dapr.io/v2alpha1", got["old"].APIVersion)
	}
}

// TestConfigurationResiliencyEndpoints: the other kinds reach the sidecar
// with their specs as stored.
func TestConfigurationResiliencyEndpoints(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "other-kinds")
	cfg := &v1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "appconfig"},
		Spec: v1alpha1.RawObject(`{"tracing":{"samplingRate":"1"},"features":[{"name":"x","enabled":true}]}`)}
	res := &v1alpha1.Resiliency{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "res"},
		Spec: v1alpha1.ResiliencySpec{Policies: v1alpha1.Policies{Timeouts: map[string]string{"fast": "1s"}},
			Targets: v1alpha1.Targets{Apps: map[string]v1alpha1.EndpointPolicyNames{"b": {PolicyNames: v1alpha1.PolicyNames{Timeout: "fast"}}}}}}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "tok"}, Data: map[string][]byte{"tok": []byte("abc")}}
	ep := &v1alpha1.HTTPEndpoint{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "ext"},
		Spec: v1alpha1.HTTPEndpointSpec{BaseURL: "http://example.test", Headers: []v1alpha1.NameValuePair{{Name: "Authorization", SecretKeyRef: v1alpha1.SecretKeyRef{Name: "tok"}}}}}
	for _, obj := range []client.Object{cfg, res, secret, ep} {
		if err := h.k.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	c := h.dial(t, ns, "orders")
	var gc *operatorv1.GetConfigurationResponse
	eventually(t, func() (err error) {
		gc, err = c.GetConfiguration(ctx, &operatorv1.GetConfigurationRequest{Namespace: ns, Name: "appconfig"})
		return err
	})
	var gotCfg struct {
		Spec map[string]any `json:"spec"`
	}
	if err := json.Unmarshal(gc.GetConfiguration(), &gotCfg); err != nil || gotCfg.Spec["features"] == nil || gotCfg.Spec["tracing"] == nil {
		t.Fatalf("configuration %s (%v)", gc.GetConfiguration(), err)
	}
	if _, err := c.GetConfiguration(ctx, &operatorv1.GetConfigurationRequest{Namespace: ns, Name: "missing"}); status.Code(err) != codes.NotFound {
		t.Fatalf("missing configuration: %v, want NotFound", err)
	}
	var lr *operatorv1.ListResiliencyResponse
	eventually(t, func() (err error) {
		if lr, err = c.ListResiliency(ctx, &operatorv1.ListResiliencyRequest{Namespace: ns}); err == nil && len(lr.GetResiliencies()) != 1 {
			err = fmt.Errorf("%d resiliencies, want 1", len(lr.GetResiliencies()))
		}
		return err
	})
	var gotRes v1alpha1.Resiliency
	if err := json.Unmarshal(lr.GetResiliencies()[0], &gotRes); err != nil || gotRes.Spec.Policies.Timeouts["fast"] != "1s" || gotRes.Spec.Targets.Apps["b"].Timeout != "fast" {
		t.Fatalf("resiliency %s (%v)", lr.GetResiliencies()[0], err)
	}
	var le *operatorv1.ListHTTPEndpointsResponse
	eventually(t, func() (err error) {
		if le, err = c.ListHTTPEndpoints(ctx, &operatorv1.ListHTTPEndpointsRequest{Namespace: ns}); err == nil && len(le.GetHttpEndpoints()) != 1 {
			err = fmt.Errorf("%d endpoints, want 1", len(le.GetHttpEndpoints()))
		}
		return err
	})
	var gotEP v1alpha1.HTTPEndpoint
	if err := json.Unmarshal(le.GetHttpEndpoints()[0], &gotEP); err != nil {
		t.Fatal(err)
	}
	if got, want := gotEP.Spec.Headers[0].Value.String(), base64.StdEncoding.EncodeToString([]byte("abc")); got != want {
		t.Fatalf("header from secret %q, want %q", got, want)
	}
}

// TestConfigurationUpdatesAssigned: a sidecar's Configuration stream
// carries only the Configuration its app's pods name in dapr.io/config, not
// one of another app, nor one a pod of the same app ID names in another
// namespace.
func TestConfigurationUpdatesAssigned(t *testing.T) {
	h := newHarness(t)
	ctx := ctxT(t)
	ns := h.namespace(t, "config-assigned")
	elsewhere := h.namespace(t, "config-assigned-elsewhere")
	pod := func(ns, name, app, config string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Annotations: map[string]string{
				annotationEnabled: "true", annotationAppID: app, annotationConfig: config}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
	}
	for _, p := range []*corev1.Pod{pod(ns, "orders-1", "orders", "orderscfg"), pod(ns, "billing-1", "billing", "billingcfg"),
		pod(elsewhere, "orders-1", "orders", "strangercfg")} {
		if err := h.k.Create(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	stream, err := h.dial(t, ns, "orders").ConfigurationUpdate(ctx, &operatorv1.ConfigurationUpdateRequest{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	h.waitSubscribed(t, "configurations", 1)
	for _, name := range []string{"billingcfg", "strangercfg", "orderscfg"} {
		cfg := &v1alpha1.Configuration{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Spec: v1alpha1.RawObject(`{}`)}
		if err := h.k.Create(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}
	ev, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	var got metav1.PartialObjectMetadata
	if err := json.Unmarshal(ev.GetConfiguration(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Name != "orderscfg" || ev.GetType() != operatorv1.ResourceEventType_CREATED {
		t.Fatalf("first event %s %s, want CREATED orderscfg (the others belong to other apps)", ev.GetType(), got.Name)
	}
}

// TestReadyAfterCacheSync: Ready (what the operator's /healthz reports) is
// closed only once the informers have synced and the API serves, so that a
// resource created after it is streamed to subscribers as a change.
func TestReadyAfterCacheSync(t *testing.T) {
	c, k := cacheAndClient(t)
	h := &harness{ca: newTestCA(t)}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := New(Options{Cache: c, APIReader: k, Source: h.source(t, spiffeid.RequireFromString("spiffe://cluster.local/ns/tandem-system/dapr-operator")), Listener: lis})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		if err := srv.Run(ctx); err != nil {
			t.Errorf("server: %v", err)
		}
	})
	select {
	case <-srv.Ready():
		t.Fatal("Ready before the cache was started")
	case <-time.After(300 * time.Millisecond):
	}
	wg.Go(func() {
		if err := c.Start(ctx); err != nil {
			t.Errorf("cache: %v", err)
		}
	})
	select {
	case <-srv.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("not Ready 30 s after the cache started")
	}
	if !c.WaitForCacheSync(ctx) {
		t.Fatal("cache not synced")
	}
}
