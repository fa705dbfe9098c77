package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/api"
)

type stateCall struct {
	name     string
	method   string
	path     string
	body     string
	hdr      map[string]string
	wantCode int
	wantErr  string // errorCode, when an error is expected
	wantMsg  string // part of the message
	wantBody string // exact body, when set
}

func runCalls(t *testing.T, base string, calls []stateCall) {
	t.Helper()
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			var body *strings.Reader
			if c.body != "" {
				body = strings.NewReader(c.body)
			}
			var resp *http.Response
			var b []byte
			if body != nil {
				resp, b = do(t, c.method, base+c.path, body, c.hdr)
			} else {
				resp, b = do(t, c.method, base+c.path, nil, c.hdr)
			}
			if resp.StatusCode != c.wantCode {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, c.wantCode, b)
			}
			if c.wantErr != "" {
				code, msg := apiError(t, b)
				if code != c.wantErr {
					t.Errorf("errorCode = %q, want %q (%s)", code, c.wantErr, msg)
				}
				if !strings.Contains(msg, c.wantMsg) {
					t.Errorf("message = %q, want it to contain %q", msg, c.wantMsg)
				}
			}
			if c.wantBody != "" && strings.TrimSpace(string(b)) != c.wantBody {
				t.Errorf("body = %s, want %s", b, c.wantBody)
			}
		})
	}
}

func TestStateSaveGetDelete(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	runCalls(t, srv.URL, []stateCall{
		{name: "save", method: "POST", path: "/v1.0/state/statestore",
			body: `[{"key":"k1","value":{ "a": 1, "b": [true, null] }},{"key":"k2","value":"text"},{"key":"k3","value":12345678901234567890}]`, wantCode: 204},
		{name: "put save", method: "PUT", path: "/v1.0/state/statestore", body: `[{"key":"k4","value":1}]`, wantCode: 204},
		{name: "empty list", method: "POST", path: "/v1.0/state/statestore", body: `[]`, wantCode: 204},
		{name: "get object", method: "GET", path: "/v1.0/state/statestore/k1", wantCode: 200, wantBody: `{"a":1,"b":[true,null]}`},
		{name: "get string", method: "GET", path: "/v1.0/state/statestore/k2", wantCode: 200, wantBody: `"text"`},
		{name: "big number kept exactly", method: "GET", path: "/v1.0/state/statestore/k3", wantCode: 200, wantBody: `12345678901234567890`},
		{name: "missing is 204", method: "GET", path: "/v1.0/state/statestore/nope", wantCode: 204},
		{name: "delete", method: "DELETE", path: "/v1.0/state/statestore/k4", wantCode: 204},
		{name: "deleted is 204", method: "GET", path: "/v1.0/state/statestore/k4", wantCode: 204},
		{name: "delete missing", method: "DELETE", path: "/v1.0/state/statestore/k4", wantCode: 204},
	})
	// Keys are stored as <appId>||<key>, and with keyPrefix name as
	// <store>||<key>.
	if got := string(f.raw(t, "statestore", "myapp||k2")); got != `"text"` {
		t.Errorf("stored myapp||k2 = %q", got)
	}
	runCalls(t, srv.URL, []stateCall{
		{name: "save prefixed", method: "POST", path: "/v1.0/state/prefixed", body: `[{"key":"p","value":true}]`, wantCode: 204},
		{name: "get prefixed", method: "GET", path: "/v1.0/state/prefixed/p", wantCode: 200, wantBody: `true`},
	})
	if got := string(f.raw(t, "prefixed", "prefixed||p")); got != `true` {
		t.Errorf("stored prefixed||p = %q", got)
	}
}

func TestStateGetHeaders(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	resp, b := do(t, "POST", srv.URL+"/v1.0/state/statestore?metadata.ttlInSeconds=100", strings.NewReader(`[{"key":"t","value":1},{"key":"u","value":2,"metadata":{"ttlInSeconds":"-1"}}]`), nil)
	if resp.StatusCode != 204 {
		t.Fatalf("save: %d %s", resp.StatusCode, b)
	}
	resp, b = do(t, "GET", srv.URL+"/v1.0/state/statestore/t?consistency=strong", nil, nil)
	if resp.StatusCode != 200 || string(b) != "1" {
		t.Fatalf("get: %d %s", resp.StatusCode, b)
	}
	if resp.Header.Get("ETag") == "" {
		t.Error("no ETag header")
	}
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("content-type %q", resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("metadata.ttlExpireTime") == "" {
		t.Error("no metadata.ttlExpireTime header for a TTL'd key")
	}
	// The query's metadata wins over the item's, as in daprd: u has a TTL.
	resp, _ = do(t, "GET", srv.URL+"/v1.0/state/statestore/u", nil, nil)
	if resp.Header.Get("metadata.ttlExpireTime") == "" {
		t.Error("query metadata.ttlInSeconds was not merged into the item")
	}
}

func TestStateETags(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	for _, store := range []string{"statestore", "plain"} {
		t.Run(store, func(t *testing.T) {
			base := srv.URL + "/v1.0/state/" + store
			resp, b := do(t, "POST", base, strings.NewReader(`[{"key":"e","value":"v1"}]`), nil)
			if resp.StatusCode != 204 {
				t.Fatalf("save: %d %s", resp.StatusCode, b)
			}
			resp, _ = do(t, "GET", base+"/e", nil, nil)
			etag := resp.Header.Get("ETag")
			runCalls(t, srv.URL, []stateCall{
				{name: "stale etag", method: "POST", path: "/v1.0/state/" + store, body: `[{"key":"e","value":"v2","etag":"stale"}]`,
					wantCode: 409, wantErr: "ERR_STATE_SAVE", wantMsg: "failed saving state in state store " + store},
				{name: "first-write on existing", method: "POST", path: "/v1.0/state/" + store,
					body: `[{"key":"e","value":"v2","options":{"concurrency":"first-write"}}]`, wantCode: 409, wantErr: "ERR_STATE_SAVE"},
				{name: "stale etag in a batch", method: "POST", path: "/v1.0/state/" + store,
					body: `[{"key":"other","value":"x"},{"key":"e","value":"v2","etag":"stale"}]`, wantCode: 409, wantErr: "ERR_STATE_SAVE"},
				{name: "unchanged", method: "GET", path: "/v1.0/state/" + store + "/e", wantCode: 200, wantBody: `"v1"`},
				{name: "delete stale", method: "DELETE", path: "/v1.0/state/" + store + "/e", hdr: map[string]string{"If-Match": "stale"},
					wantCode: 409, wantErr: "ERR_STATE_DELETE", wantMsg: "failed deleting state with key e"},
				{name: "still there", method: "GET", path: "/v1.0/state/" + store + "/e", wantCode: 200, wantBody: `"v1"`},
				{name: "good etag", method: "POST", path: "/v1.0/state/" + store,
					body: `[{"key":"e","value":"v2","etag":"` + etag + `","options":{"concurrency":"first-write","consistency":"strong"}}]`, wantCode: 204},
				{name: "delete good etag is now stale", method: "DELETE", path: "/v1.0/state/" + store + "/e?concurrency=first-write", hdr: map[string]string{"If-Match": etag},
					wantCode: 409, wantErr: "ERR_STATE_DELETE"},
			})
			resp, _ = do(t, "GET", base+"/e", nil, nil)
			runCalls(t, srv.URL, []stateCall{
				{name: "delete current etag", method: "DELETE", path: "/v1.0/state/" + store + "/e", hdr: map[string]string{"If-Match": resp.Header.Get("ETag")}, wantCode: 204},
				{name: "gone", method: "GET", path: "/v1.0/state/" + store + "/e", wantCode: 204},
			})
		})
	}
	// The transactional store saves a batch all or nothing.
	if f.raw(t, "statestore", "myapp||other") != nil {
		t.Error("statestore: a batch with a stale etag wrote another item")
	}
}

func TestStateBadInput(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state, MaxRequestBodySize: 1 << 10})
	big := `[{"key":"big","value":"` + strings.Repeat("x", 2<<10) + `"}]`
	runCalls(t, srv.URL, []stateCall{
		{name: "truncated JSON", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1},{"key":`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "object not array", method: "POST", path: "/v1.0/state/statestore", body: `{"key":"a","value":1}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "wrong key type", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1},{"key":5}]`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "trailing garbage", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1}] x`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "missing key", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1},{"value":1}]`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST", wantMsg: `"key" is a required field`},
		{name: "illegal key in save", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1},{"key":"x||y","value":1}]`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST", wantMsg: "can't contain '||'"},
		{name: "bad concurrency", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1},{"key":"b","value":1,"options":{"concurrency":"most-write"}}]`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "bad ttl", method: "POST", path: "/v1.0/state/statestore?metadata.ttlInSeconds=soon", body: `[{"key":"a","value":1}]`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "nothing written", method: "GET", path: "/v1.0/state/statestore/a", wantCode: 204},
		{name: "illegal key in get", method: "GET", path: "/v1.0/state/statestore/x%7C%7Cy", wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "illegal key in delete", method: "DELETE", path: "/v1.0/state/statestore/x%7C%7Cy", wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "bad delete concurrency", method: "DELETE", path: "/v1.0/state/statestore/a?concurrency=x", wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "too large", method: "POST", path: "/v1.0/state/statestore", body: big, wantCode: 413, wantErr: "ERR_BODY_TOO_LARGE"},
		{name: "unknown store", method: "POST", path: "/v1.0/state/nostore", body: `[{"key":"a","value":1}]`, wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND", wantMsg: "state store nostore is not found"},
		{name: "unknown store wins over bad body", method: "POST", path: "/v1.0/state/nostore", body: `[`, wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "unknown store get", method: "GET", path: "/v1.0/state/nostore/a", wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "unknown store delete", method: "DELETE", path: "/v1.0/state/nostore/a", wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "unknown store bulk", method: "POST", path: "/v1.0/state/nostore/bulk", body: `{"keys":["a"]}`, wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "unknown store transaction", method: "POST", path: "/v1.0/state/nostore/transaction", body: `{}`, wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "unknown store query", method: "POST", path: "/v1.0-alpha1/state/nostore/query", body: `{}`, wantCode: 400, wantErr: "ERR_STATE_STORE_NOT_FOUND"},
		{name: "not ready", method: "GET", path: "/v1.0/state/broken/a", wantCode: 503, wantErr: "ERR_STATE_STORE_NOT_READY", wantMsg: "connection refused"},
		{name: "not ready save", method: "POST", path: "/v1.0/state/broken", body: `[{"key":"a","value":1}]`, wantCode: 503, wantErr: "ERR_STATE_STORE_NOT_READY", wantMsg: "state store broken is not ready"},
		{name: "still serving", method: "POST", path: "/v1.0/state/statestore", body: `[{"key":"a","value":1}]`, wantCode: 204},
	})
}

func TestStateNotConfigured(t *testing.T) {
	st := api.NewState(api.StateConfig{Registry: components.NewRegistry[state.Store](), AppID: testAppID})
	srv := serve(t, Config{State: st})
	runCalls(t, srv.URL, []stateCall{
		{name: "get", method: "GET", path: "/v1.0/state/statestore/a", wantCode: 500, wantErr: "ERR_STATE_STORE_NOT_CONFIGURED"},
		{name: "save", method: "POST", path: "/v1.0/state/statestore", body: `[]`, wantCode: 500, wantErr: "ERR_STATE_STORE_NOT_CONFIGURED"},
		{name: "transaction", method: "POST", path: "/v1.0/state/statestore/transaction", body: `{}`, wantCode: 500, wantErr: "ERR_STATE_STORE_NOT_CONFIGURED"},
	})
}

func TestStateBulkGet(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	for _, store := range []string{"statestore", "plain"} {
		t.Run(store, func(t *testing.T) {
			base := srv.URL + "/v1.0/state/" + store
			if resp, b := do(t, "POST", base, strings.NewReader(`[{"key":"a","value":{"n":1}},{"key":"b","value":"two"}]`), nil); resp.StatusCode != 204 {
				t.Fatalf("save: %d %s", resp.StatusCode, b)
			}
			resp, b := do(t, "POST", base+"/bulk?metadata.x=y", strings.NewReader(`{"keys":["a","b","missing"],"parallelism":2}`), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("bulk: %d %s", resp.StatusCode, b)
			}
			var items []struct {
				Key   string          `json:"key"`
				Data  json.RawMessage `json:"data"`
				ETag  *string         `json:"etag"`
				Error string          `json:"error"`
			}
			if err := json.Unmarshal(b, &items); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			got := map[string]string{}
			for _, it := range items {
				got[it.Key] = string(it.Data)
				if it.Key != "missing" && (it.ETag == nil || *it.ETag == "") {
					t.Errorf("%s: no etag", it.Key)
				}
			}
			want := map[string]string{"a": `{"n":1}`, "b": `"two"`, "missing": ``}
			if len(got) != len(want) {
				t.Fatalf("items = %s", b)
			}
			for k, v := range want {
				if got[k] != v {
					t.Errorf("%s: data %q, want %q", k, got[k], v)
				}
			}
		})
	}
	runCalls(t, srv.URL, []stateCall{
		{name: "no keys", method: "PUT", path: "/v1.0/state/statestore/bulk", body: `{"keys":[]}`, wantCode: 200, wantBody: `[]`},
		{name: "malformed", method: "POST", path: "/v1.0/state/statestore/bulk", body: `{"keys":"a"}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "illegal key", method: "POST", path: "/v1.0/state/statestore/bulk", body: `{"keys":["a||b"]}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
	})
}

func TestStateTransaction(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	if resp, b := do(t, "POST", srv.URL+"/v1.0/state/statestore", strings.NewReader(`[{"key":"old","value":1},{"key":"keep","value":1}]`), nil); resp.StatusCode != 204 {
		t.Fatalf("save: %d %s", resp.StatusCode, b)
	}
	runCalls(t, srv.URL, []stateCall{
		{name: "upsert and delete", method: "POST", path: "/v1.0/state/statestore/transaction",
			body: `{"operations":[{"operation":"upsert","request":{"key":"new","value":{"x":1},"metadata":{"ttlInSeconds":"60"}}},{"operation":"delete","request":{"key":"old"}}],"metadata":{"partitionKey":"p"}}`, wantCode: 204},
		{name: "new", method: "GET", path: "/v1.0/state/statestore/new", wantCode: 200, wantBody: `{"x":1}`},
		{name: "old gone", method: "GET", path: "/v1.0/state/statestore/old", wantCode: 204},
		{name: "atomic on stale etag", method: "PUT", path: "/v1.0/state/statestore/transaction",
			body:     `{"operations":[{"operation":"upsert","request":{"key":"partial","value":1}},{"operation":"delete","request":{"key":"keep"}},{"operation":"upsert","request":{"key":"new","value":2,"etag":"stale"}}]}`,
			wantCode: 500, wantErr: "ERR_STATE_TRANSACTION", wantMsg: "error while executing state transaction"},
		{name: "nothing applied", method: "GET", path: "/v1.0/state/statestore/partial", wantCode: 204},
		{name: "keep kept", method: "GET", path: "/v1.0/state/statestore/keep", wantCode: 200, wantBody: `1`},
		{name: "empty", method: "POST", path: "/v1.0/state/statestore/transaction", body: `{"operations":[]}`, wantCode: 204},
		{name: "unknown operation", method: "POST", path: "/v1.0/state/statestore/transaction",
			body: `{"operations":[{"operation":"upsert","request":{"key":"z","value":1}},{"operation":"merge","request":{"key":"a"}}]}`, wantCode: 400, wantErr: "ERR_NOT_SUPPORTED_STATE_OPERATION", wantMsg: "operation type merge not supported"},
		{name: "malformed", method: "POST", path: "/v1.0/state/statestore/transaction", body: `{"operations":[{"operation":"upsert","request":{"key":1}}]}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "illegal key", method: "POST", path: "/v1.0/state/statestore/transaction", body: `{"operations":[{"operation":"delete","request":{"key":"a||b"}}]}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "missing key", method: "POST", path: "/v1.0/state/statestore/transaction", body: `{"operations":[{"operation":"delete","request":{}}]}`, wantCode: 400, wantErr: "ERR_MALFORMED_REQUEST"},
		{name: "z not written", method: "GET", path: "/v1.0/state/statestore/z", wantCode: 204},
		{name: "not transactional", method: "POST", path: "/v1.0/state/plain/transaction", body: `{"operations":[]}`, wantCode: 500, wantErr: "ERR_STATE_STORE_NOT_SUPPORTED", wantMsg: "doesn't support transactions"},
		{name: "not ready", method: "POST", path: "/v1.0/state/broken/transaction", body: `{}`, wantCode: 503, wantErr: "ERR_STATE_STORE_NOT_READY"},
	})
}

func TestStateQuery(t *testing.T) {
	f := newFixture(t)
	srv := serve(t, Config{State: f.state})
	if resp, b := do(t, "POST", srv.URL+"/v1.0/state/statestore", strings.NewReader(`[{"key":"p1","value":{"city":"Paris","n":2}},{"key":"p2","value":{"city":"Oslo","n":1}},{"key":"p3","value":{"city":"Paris","n":1}}]`), nil); resp.StatusCode != 204 {
		t.Fatalf("save: %d %s", resp.StatusCode, b)
	}
	resp, b := do(t, "POST", srv.URL+"/v1.0-alpha1/state/statestore/query", strings.NewReader(`{"filter":{"EQ":{"city":"Paris"}},"sort":[{"key":"n"}]}`), nil)
	if resp.StatusCode != 200 {
		t.Fatalf("query: %d %s", resp.StatusCode, b)
	}
	var out struct {
		Results []struct {
			Key  string          `json:"key"`
			Data json.RawMessage `json:"data"`
			ETag string          `json:"etag"`
		} `json:"results"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if len(out.Results) != 2 || out.Results[0].Key != "p3" || out.Results[1].Key != "p1" || out.Results[0].ETag == "" {
		t.Fatalf("results = %s", b)
	}
	if string(out.Results[0].Data) != `{"city":"Paris","n":1}` {
		t.Errorf("data = %s", out.Results[0].Data)
	}
	runCalls(t, srv.URL, []stateCall{
		{name: "no results", method: "PUT", path: "/v1.0-alpha1/state/statestore/query", body: `{"filter":{"EQ":{"city":"Rome"}}}`, wantCode: 204},
		{name: "bad query", method: "POST", path: "/v1.0-alpha1/state/statestore/query", body: `{"filter":{"LIKE":{"city":"x"}}}`, wantCode: 500, wantErr: "ERR_STATE_QUERY"},
		{name: "malformed query", method: "POST", path: "/v1.0-alpha1/state/statestore/query", body: `{`, wantCode: 500, wantErr: "ERR_STATE_QUERY"},
		{name: "not a querier", method: "POST", path: "/v1.0-alpha1/state/plain/query", body: `{}`, wantCode: 500, wantErr: "ERR_STATE_STORE_NOT_SUPPORTED", wantMsg: "does not support querying"},
	})
}

func TestStateRoutesNeedState(t *testing.T) {
	// Without a State the routes are not registered: the request falls
	// through to invocation, like any unknown path.
	srv := serve(t, Config{})
	resp, b := do(t, "GET", srv.URL+"/v1.0/state/statestore/a", nil, nil)
	if resp.StatusCode == 200 || resp.StatusCode == 204 {
		t.Fatalf("status %d %s", resp.StatusCode, b)
	}
}
