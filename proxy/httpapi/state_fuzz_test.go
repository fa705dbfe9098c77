package httpapi

import (
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/tandemrun/tandem/proxy/apierr"
)

var transactionSeeds = []string{
	`{"operations":[{"operation":"upsert","request":{"key":"a","value":{"x":1},"etag":"1","metadata":{"ttlInSeconds":"5"},"options":{"concurrency":"first-write","consistency":"strong"}}},{"operation":"delete","request":{"key":"b"}}],"metadata":{"p":"q"}}`,
	`{"operations":[]}`,
	`{}`,
	`{"operations":[{"operation":"merge","request":{"key":"a"}}]}`,
	`{"operations":[{"operation":"upsert","request":{"key":1}}]}`,
	`{"operations":[{"operation":"upsert"}]}`,
	`{"operations":[{"operation":"delete","request":null}]}`,
	`{"operations":null,"metadata":{"a":1}}`,
	`[`,
	``,
	`null`,
}

// FuzzDecodeTransaction: the transaction body decoder never panics,
// rejects with a 4xx *apierr.Error, and on success yields well-formed
// operations with JSON values.
func FuzzDecodeTransaction(f *testing.F) {
	for _, s := range transactionSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeTransaction(body, map[string]string{"q": "1"})
		if err != nil {
			var e *apierr.Error
			if !errors.As(err, &e) || e.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 API error", err)
			}
			return
		}
		if req.Metadata["q"] != "1" {
			t.Fatal("query metadata not merged")
		}
		for i, op := range req.Operations {
			if (op.Upsert == nil) == (op.Delete == nil) {
				t.Fatalf("operation %d has %v upsert, %v delete", i, op.Upsert != nil, op.Delete != nil)
			}
			if op.Upsert != nil && !json.Valid(op.Upsert.Value) {
				t.Fatalf("operation %d value %q is not JSON", i, op.Upsert.Value)
			}
		}
	})
}

var saveSeeds = []string{
	`[{"key":"a","value":{"x":1}},{"key":"b","value":"s","etag":"3","metadata":{"ttlInSeconds":"1"},"options":{"concurrency":"last-write"}}]`,
	`[{"key":"a"}]`,
	`[]`,
	`null`,
	`{"key":"a"}`,
	`[{"key":"a","value":1},{"key":`,
	`[{"value":1}]`,
	`[{"key":"a||b","value":1}]`,
	`[{"key":"a","value":1}] x`,
}

// FuzzDecodeStateSave: the save body decoder never panics, rejects with a
// 400 *apierr.Error, and on success yields keyed items with JSON values.
func FuzzDecodeStateSave(f *testing.F) {
	for _, s := range saveSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		reqs, err := decodeStateSave(body, nil)
		if err != nil {
			var e *apierr.Error
			if !errors.As(err, &e) || e.HTTPStatus != http.StatusBadRequest {
				t.Fatalf("error %v is not a 400 API error", err)
			}
			return
		}
		for i, r := range reqs {
			if r.Key == "" || !json.Valid(r.Value) || r.Metadata == nil {
				t.Fatalf("item %d: %+v", i, r)
			}
		}
	})
}
