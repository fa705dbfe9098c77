package server

import (
	"encoding/json"
	"reflect"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestWireShape: what a sidecar receives is, for the same stored resource,
// the JSON Dapr's operator sends (its Go types marshalled with
// encoding/json): empty fields present where Dapr's struct tags keep them
// (a struct field tagged omitempty is still written), kind and apiVersion
// only where the stored object has them. Dapr's suite (operator/api/*)
// compares exactly this; the wants are written from Dapr 1.18's pkg/apis.
func TestWireShape(t *testing.T) {
	const meta = `"metadata":{"name":"n","namespace":"default","creationTimestamp":null}`
	const noRef = `"secretKeyRef":{"name":"","key":""}`
	cases := []struct {
		name         string
		kind         *kind
		stored, want string
	}{
		{"component as a watch event brings it", &components,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"type":"state.redis","version":"v1","metadata":[{"name":"connectionString","value":"foobar"}]}}`,
			`{` + meta + `,"spec":{"type":"state.redis","version":"v1","ignoreErrors":false,"initTimeout":"",
			  "metadata":[{"name":"connectionString","value":"foobar",` + noRef + `}]},"auth":{"secretStore":""}}`},
		{"component without metadata", &components,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"type":"state.in-memory","version":"v1"}}`,
			`{` + meta + `,"spec":{"type":"state.in-memory","version":"v1","ignoreErrors":false,"initTimeout":"","metadata":null},"auth":{"secretStore":""}}`},
		{"listed component with scopes, a secret and an env ref", &components,
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Component","metadata":{"name":"n","namespace":"default"},
			  "spec":{"type":"state.redis","version":"v1","ignoreErrors":true,"initTimeout":"5s",
			   "metadata":[{"name":"a","value":1},{"name":"b","secretKeyRef":{"name":"s","key":"k"}},{"name":"c","envRef":"E"}]},
			  "auth":{"secretStore":"vault"},"scopes":["myapp","app1"]}`,
			`{"apiVersion":"dapr.io/v1alpha1","kind":"Component",` + meta + `,
			  "spec":{"type":"state.redis","version":"v1","ignoreErrors":true,"initTimeout":"5s",
			   "metadata":[{"name":"a","value":1,` + noRef + `},{"name":"b","value":null,"secretKeyRef":{"name":"s","key":"k"}},
			    {"name":"c","value":null,` + noRef + `,"envRef":"E"}]},
			  "auth":{"secretStore":"vault"},"scopes":["myapp","app1"]}`},
		{"configuration", &configurations,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"tracing":{"samplingRate":"1"}}}`,
			`{` + meta + `,"spec":{"tracing":{"samplingRate":"1"}}}`},
		{"configuration without spec", &configurations,
			`{"metadata":{"name":"n","namespace":"default"}}`,
			`{` + meta + `,"spec":{}}`},
		{"resiliency", &resiliencies,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"policies":{"timeouts":{"general":"5s"}}}}`,
			`{` + meta + `,"spec":{"policies":{"timeouts":{"general":"5s"}},"targets":{}}}`},
		{"resiliency with every part", &resiliencies,
			`{"metadata":{"name":"n","namespace":"default"},"scopes":["a"],"spec":{
			   "policies":{"retries":{"r":{"policy":"constant","duration":"1s","maxRetries":0,"matching":{"httpStatusCodes":"500","gRPCStatusCodes":""}},
			     "e":{"policy":"exponential","maxInterval":"9s","duration":""}},
			    "circuitBreakers":{"cb":{"maxRequests":1,"interval":"1s","timeout":"2s","trip":"consecutiveFailures > 2"}}},
			   "targets":{"apps":{"b":{"timeout":"t","circuitBreakerCacheSize":5,"retry":""}},"actors":{"A":{"retry":"r","circuitBreakerScope":"type"}},
			    "components":{"s":{"outbound":{"retry":"r"}}}}}}`,
			`{` + meta + `,"scopes":["a"],"spec":{
			   "policies":{"retries":{"r":{"policy":"constant","duration":"1s","maxRetries":0,"matching":{"httpStatusCodes":"500"}},
			     "e":{"policy":"exponential","maxInterval":"9s"}},
			    "circuitBreakers":{"cb":{"maxRequests":1,"interval":"1s","timeout":"2s","trip":"consecutiveFailures > 2"}}},
			   "targets":{"apps":{"b":{"timeout":"t","circuitBreakerCacheSize":5}},"actors":{"A":{"retry":"r","circuitBreakerScope":"type"}},
			    "components":{"s":{"inbound":{},"outbound":{"retry":"r"}}}}}}`},
		{"http endpoint", &httpEndpoints,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"baseUrl":"http://localhost:1234"}}`,
			`{` + meta + `,"spec":{"baseUrl":"http://localhost:1234","headers":null},"auth":{"secretStore":""}}`},
		{"http endpoint with headers and client TLS", &httpEndpoints,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"baseUrl":"https://x","headers":[{"name":"h","value":"v"}],
			  "clientTLS":{"rootCA":{"value":"PEM"},"renegotiation":"OnceAsClient"}},"auth":{"secretStore":"vault"}}`,
			`{` + meta + `,"spec":{"baseUrl":"https://x","headers":[{"name":"h","value":"v",` + noRef + `}],
			  "clientTLS":{"rootCA":{"value":"PEM"},"certificate":null,"privateKey":null,"renegotiation":"OnceAsClient"}},"auth":{"secretStore":"vault"}}`},
		{"subscription", &subscriptions,
			`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","metadata":{"name":"n","namespace":"default"},
			  "spec":{"pubsubname":"p","topic":"t","routes":{"default":"/a","rules":[{"match":"event.type == 'x'","path":"/x"}]}},"scopes":["a"]}`,
			`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription",` + meta + `,
			  "spec":{"pubsubname":"p","topic":"t","routes":{"default":"/a","rules":[{"match":"event.type == 'x'","path":"/x"}]},
			   "bulkSubscribe":{"enabled":false}},"scopes":["a"]}`},
		{"subscription stored from v1alpha1", &subscriptions,
			`{"metadata":{"name":"n","namespace":"default"},"spec":{"pubsubname":"p","topic":"t","route":"/old","metadata":{"m":"1"},
			  "deadLetterTopic":"dead","bulkSubscribe":{"enabled":true,"maxMessagesCount":10,"maxAwaitDurationMs":5}}}`,
			`{` + meta + `,"spec":{"pubsubname":"p","topic":"t","routes":{"default":"/old"},"metadata":{"m":"1"},
			  "deadLetterTopic":"dead","bulkSubscribe":{"enabled":true,"maxMessagesCount":10,"maxAwaitDurationMs":5}}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := tc.kind.object()
			if err := json.Unmarshal([]byte(tc.stored), obj); err != nil {
				t.Fatal(err)
			}
			got, err := tc.kind.encode(t.Context(), client.Reader(nil), obj)
			if err != nil {
				t.Fatal(err)
			}
			if !sameJSON(t, got, []byte(tc.want)) {
				t.Errorf("sent\n%s\nDapr's operator sends\n%s", got, tc.want)
			}
		})
	}
}

// sameJSON reports whether a and b hold the same JSON value.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}
