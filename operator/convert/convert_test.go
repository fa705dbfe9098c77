package convert

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestConvert(t *testing.T) {
	v1 := `{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","metadata":{"name":"orders","namespace":"shop"},` +
		`"spec":{"pubsubname":"ps","topic":"orders","route":"/orders","deadLetterTopic":"dead","metadata":{"rawPayload":"true"}},"scopes":["app"]}`
	v2, err := Convert([]byte(v1), "dapr.io/v2alpha1")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(v2, &got); err != nil {
		t.Fatal(err)
	}
	spec := got["spec"].(map[string]any)
	if got["apiVersion"] != "dapr.io/v2alpha1" || spec["routes"].(map[string]any)["default"] != "/orders" || spec["route"] != nil ||
		spec["topic"] != "orders" || spec["deadLetterTopic"] != "dead" || got["scopes"].([]any)[0] != "app" ||
		got["metadata"].(map[string]any)["name"] != "orders" {
		t.Errorf("v1alpha1 to v2alpha1: %s", v2)
	}
	back, err := Convert(v2, "dapr.io/v1alpha1")
	if err != nil {
		t.Fatal(err)
	}
	var round, orig map[string]any
	_ = json.Unmarshal(back, &round)
	_ = json.Unmarshal([]byte(v1), &orig)
	if a, b := mustJSON(round), mustJSON(orig); a != b {
		t.Errorf("round trip:\n got %s\nwant %s", a, b)
	}
	// Rules have no v1alpha1 form: the default route is kept.
	withRules := `{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","spec":{"routes":{"rules":[{"match":"x","path":"/a"}],"default":"/d"}}}`
	if out, err := Convert([]byte(withRules), "dapr.io/v1alpha1"); err != nil || !bytes.Contains(out, []byte(`"route":"/d"`)) || bytes.Contains(out, []byte("rules")) {
		t.Errorf("rules to v1alpha1: %s %v", out, err)
	}
	for _, bad := range []struct{ raw, to string }{
		{`{"apiVersion":"dapr.io/v1alpha1","kind":"Component"}`, "dapr.io/v2alpha1"},
		{`{"apiVersion":"dapr.io/v3","kind":"Subscription"}`, "dapr.io/v1alpha1"},
		{v1, "dapr.io/v9"},
		{`not json`, "dapr.io/v1alpha1"},
	} {
		if _, err := Convert([]byte(bad.raw), bad.to); err == nil {
			t.Errorf("%s to %s: converted", bad.raw, bad.to)
		}
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// TestHandler: a ConversionReview is answered with its UID and the objects
// converted, or a failure for an object that cannot be.
func TestHandler(t *testing.T) {
	review := func(objs ...string) []byte {
		raw := make([]json.RawMessage, len(objs))
		for i, o := range objs {
			raw[i] = json.RawMessage(o)
		}
		b, _ := json.Marshal(map[string]any{"apiVersion": "apiextensions.k8s.io/v1", "kind": "ConversionReview",
			"request": map[string]any{"uid": "u-1", "desiredAPIVersion": "dapr.io/v2alpha1", "objects": raw}})
		return b
	}
	post := func(body []byte) map[string]any {
		rec := httptest.NewRecorder()
		Handler{}.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/convert", bytes.NewReader(body)))
		if rec.Code != 200 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		var out map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
			t.Fatal(err)
		}
		return out["response"].(map[string]any)
	}
	resp := post(review(`{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","spec":{"route":"/a"}}`,
		`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","spec":{"routes":{"default":"/b"}}}`))
	objs := resp["convertedObjects"].([]any)
	if resp["uid"] != "u-1" || resp["result"].(map[string]any)["status"] != "Success" || len(objs) != 2 ||
		objs[0].(map[string]any)["spec"].(map[string]any)["routes"].(map[string]any)["default"] != "/a" {
		t.Errorf("response %v", resp)
	}
	resp = post(review(`{"apiVersion":"dapr.io/v1alpha1","kind":"Component"}`))
	if resp["result"].(map[string]any)["status"] != "Failure" || resp["convertedObjects"] != nil {
		t.Errorf("a Component: %v", resp)
	}
	rec := httptest.NewRecorder()
	Handler{}.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/convert", bytes.NewReader([]byte("{"))))
	if rec.Code != http.StatusBadRequest {
		t.Errorf("garbage: %d", rec.Code)
	}
}

// FuzzConvert: no input makes Convert panic, and what it accepts is JSON.
func FuzzConvert(f *testing.F) {
	f.Add([]byte(`{"apiVersion":"dapr.io/v1alpha1","kind":"Subscription","spec":{"route":"/a"}}`), "dapr.io/v2alpha1")
	f.Add([]byte(`{"apiVersion":"dapr.io/v2alpha1","kind":"Subscription","spec":{"routes":[]}}`), "dapr.io/v1alpha1")
	f.Fuzz(func(t *testing.T, raw []byte, to string) {
		out, err := Convert(raw, to)
		if err == nil && !json.Valid(out) {
			t.Fatalf("invalid JSON out: %s", out)
		}
	})
}
