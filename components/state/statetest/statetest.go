// Package statetest is the conformance suite every state store passes, run
// against the backend's real server by the backend's own tests:
//
//	func TestConformance(t *testing.T) {
//		statetest.RequireServer(t, "127.0.0.1:6379")
//		statetest.Run(t, func(t *testing.T) state.Store { … initialised store … })
//	}
//
// Keys are unique per run ("statetest-{<random>}||…") and deleted
// afterwards, so the suite can share a database with other data. The braces
// are a Redis Cluster hash tag: a subtest's keys share one hash slot, as a
// cluster's multi-key transactions need; other stores ignore them.
package statetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tandemrun/tandem/components/state"
)

// RequireServer skips the test when nothing listens on addr, or fails it
// when the environment variable CI is "true" (CI machines must have every
// server running, so a missing one is a broken setup, not a reason to skip).
func RequireServer(t testing.TB, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		_ = c.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("server %s is unreachable (%v): CI=true requires it; start it or fix the CI services", addr, err)
	}
	t.Skipf("server %s is unreachable (%v): start it to run this test (CI=true turns this skip into a failure)", addr, err)
}

// Run runs the suite. newStore returns an initialised store and registers its
// Close with t.Cleanup; it is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) state.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s state.Store, k *keys)
	}{
		{"Features", testFeatures},
		{"GetMissing", testGetMissing},
		{"RoundTrip", testRoundTrip},
		{"ETags", testETags},
		{"FirstWrite", testFirstWrite},
		{"Delete", testDelete},
		{"InvalidOptions", testInvalidOptions},
		{"TTL", testTTL},
		{"Transaction", testTransaction},
		{"Bulk", testBulk},
		{"ConcurrentSets", testConcurrentSets},
		{"ConcurrentFirstWrite", testConcurrentFirstWrite},
		{"OptimisticIncrements", testOptimisticIncrements},
		{"Query", testQuery},
		{"DeleteWithPrefix", testDeleteWithPrefix},
		{"KeysLike", testKeysLike},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newStore(t)
			tc.fn(t, s, newKeys(t, s))
		})
	}
}

// keys hands out unique keys and deletes them when the test ends.
type keys struct {
	prefix string
	mu     sync.Mutex
	used   map[string]bool
}

func newKeys(t *testing.T, s state.Store) *keys {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	k := &keys{prefix: "statetest-{" + hex.EncodeToString(b) + "}||", used: map[string]bool{}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		k.mu.Lock()
		defer k.mu.Unlock()
		for key := range k.used {
			if err := s.Delete(ctx, &state.DeleteRequest{Key: key}); err != nil {
				t.Logf("cleanup: delete %q: %v", key, err)
			}
		}
	})
	return k
}

func (k *keys) key(name string) string {
	k.mu.Lock()
	defer k.mu.Unlock()
	key := k.prefix + name
	k.used[key] = true
	return key
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func set(t *testing.T, s state.Store, key, value string) {
	t.Helper()
	if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(value)}); err != nil {
		t.Fatalf("set %q: %v", key, err)
	}
}

func mustGet(t *testing.T, s state.Store, key string) *state.GetResponse {
	t.Helper()
	r, err := s.Get(ctx(t), &state.GetRequest{Key: key})
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if r == nil {
		t.Fatalf("get %q: missing, want a value", key)
	}
	if r.ETag == nil || *r.ETag == "" {
		t.Fatalf("get %q: no etag", key)
	}
	return r
}

func mustMiss(t *testing.T, s state.Store, key string) {
	t.Helper()
	r, err := s.Get(ctx(t), &state.GetRequest{Key: key})
	if err != nil {
		t.Fatalf("get %q: %v", key, err)
	}
	if r != nil {
		t.Fatalf("get %q = %q, want missing", key, r.Data)
	}
}

// jsonEqual compares JSON documents by meaning: stores such as PostgreSQL
// (jsonb) normalise spacing and key order, as Dapr's do.
func jsonEqual(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("value %q is not JSON: %v", got, err)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("bad test JSON %q: %v", want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("value = %s, want %s", got, want)
	}
}

func wantMismatch(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, state.ErrETagMismatch) {
		t.Fatalf("%s: err = %v, want ErrETagMismatch", what, err)
	}
}

func testFeatures(t *testing.T, s state.Store, _ *keys) {
	f := s.Features()
	if !state.HasFeature(f, state.FeatureETag) {
		t.Errorf("features %v lack ETAG", f)
	}
	_, isTx := s.(state.Transactional)
	if isTx != state.HasFeature(f, state.FeatureTransactional) {
		t.Errorf("features %v: TRANSACTIONAL reported = %v, but implements Transactional = %v", f, !isTx, isTx)
	}
	_, isQ := s.(state.Querier)
	if isQ != state.HasFeature(f, state.FeatureQueryAPI) {
		t.Errorf("features %v: QUERY_API reported = %v, but implements Querier = %v", f, !isQ, isQ)
	}
	_, isPD := s.(state.PrefixDeleter)
	if isPD != state.HasFeature(f, state.FeatureDeleteWithPrefix) {
		t.Errorf("features %v: DELETE_WITH_PREFIX reported = %v, but implements PrefixDeleter = %v", f, !isPD, isPD)
	}
	_, isKL := s.(state.KeysLiker)
	if isKL != state.HasFeature(f, state.FeatureKeysLike) {
		t.Errorf("features %v: KEYS_LIKE reported = %v, but implements KeysLiker = %v", f, !isKL, isKL)
	}
	if state.HasFeature(f, state.FeatureActor) {
		t.Errorf("features %v: ACTOR is the runtime's to add, not the store's", f)
	}
}

func testGetMissing(t *testing.T, s state.Store, k *keys) {
	mustMiss(t, s, k.key("never-set"))
}

func testRoundTrip(t *testing.T, s state.Store, k *keys) {
	t.Run("JSON", func(t *testing.T) {
		key := k.key("json")
		doc := `{"name":"tandem","n":42,"tags":["a","b"],"nested":{"ok":true}}`
		set(t, s, key, doc)
		r := mustGet(t, s, key)
		jsonEqual(t, r.Data, doc)
		first := *r.ETag
		set(t, s, key, `"a string"`)
		r = mustGet(t, s, key)
		jsonEqual(t, r.Data, `"a string"`)
		if *r.ETag == first {
			t.Errorf("etag %q did not change on overwrite", first)
		}
	})
	t.Run("Binary", func(t *testing.T) {
		key := k.key("binary")
		val := []byte{0, 1, 2, 0xff, 0xfe, '"', '\\', 'x', 0x80}
		if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: val, IsBinary: true}); err != nil {
			t.Fatalf("set binary: %v", err)
		}
		if r := mustGet(t, s, key); !bytes.Equal(r.Data, val) {
			t.Fatalf("binary value = %v, want %v", r.Data, val)
		}
		// JSON-looking bytes sent as binary come back byte for byte.
		raw := []byte(`{ "b":1,  "a":2 }`)
		if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: raw, IsBinary: true}); err != nil {
			t.Fatalf("set binary json: %v", err)
		}
		if r := mustGet(t, s, key); !bytes.Equal(r.Data, raw) {
			t.Fatalf("binary value = %q, want %q", r.Data, raw)
		}
	})
}

func testETags(t *testing.T, s state.Store, k *keys) {
	key := k.key("etag")
	set(t, s, key, `"v1"`)
	e1 := *mustGet(t, s, key).ETag
	if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"v2"`), ETag: &e1,
		Options: state.Options{Concurrency: state.FirstWrite}}); err != nil {
		t.Fatalf("set with current etag: %v", err)
	}
	r := mustGet(t, s, key)
	e2 := *r.ETag
	if e2 == e1 {
		t.Fatalf("etag unchanged after write: %q", e1)
	}
	for _, c := range []state.Concurrency{state.FirstWrite, state.LastWrite, ""} {
		err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"stale"`), ETag: &e1,
			Options: state.Options{Concurrency: c}})
		wantMismatch(t, "set with stale etag, concurrency "+string(c), err)
	}
	jsonEqual(t, mustGet(t, s, key).Data, `"v2"`)
	if *mustGet(t, s, key).ETag != e2 {
		t.Fatal("a failed write changed the etag")
	}

	// An etag for a key that does not exist never matches, and writes nothing.
	missing := k.key("etag-missing")
	err := s.Set(ctx(t), &state.SetRequest{Key: missing, Value: []byte(`1`), ETag: &e2})
	wantMismatch(t, "set missing key with etag", err)
	mustMiss(t, s, missing)

	// An etag the store cannot parse is invalid or a mismatch, never a write.
	bad := "not-an-etag"
	err = s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"bad"`), ETag: &bad})
	if !errors.Is(err, state.ErrETagMismatch) && !errors.Is(err, state.ErrETagInvalid) {
		t.Fatalf("set with malformed etag: err = %v, want ErrETagInvalid or ErrETagMismatch", err)
	}
	jsonEqual(t, mustGet(t, s, key).Data, `"v2"`)

	// An empty etag is no etag (Dapr's rule).
	empty := ""
	if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"v3"`), ETag: &empty}); err != nil {
		t.Fatalf("set with empty etag: %v", err)
	}
}

func testFirstWrite(t *testing.T, s state.Store, k *keys) {
	key := k.key("first")
	fw := state.Options{Concurrency: state.FirstWrite}
	if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"one"`), Options: fw}); err != nil {
		t.Fatalf("first-write on a new key: %v", err)
	}
	err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"two"`), Options: fw})
	wantMismatch(t, "first-write without etag on an existing key", err)
	jsonEqual(t, mustGet(t, s, key).Data, `"one"`)
	// last-write without an etag always writes.
	if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"three"`),
		Options: state.Options{Concurrency: state.LastWrite}}); err != nil {
		t.Fatalf("last-write: %v", err)
	}
	jsonEqual(t, mustGet(t, s, key).Data, `"three"`)
}

func testDelete(t *testing.T, s state.Store, k *keys) {
	key := k.key("del")
	if err := s.Delete(ctx(t), &state.DeleteRequest{Key: k.key("del-missing")}); err != nil {
		t.Fatalf("delete missing key without etag: %v", err)
	}
	set(t, s, key, `"v1"`)
	stale := *mustGet(t, s, key).ETag
	set(t, s, key, `"v2"`)
	err := s.Delete(ctx(t), &state.DeleteRequest{Key: key, ETag: &stale})
	wantMismatch(t, "delete with stale etag", err)
	jsonEqual(t, mustGet(t, s, key).Data, `"v2"`)
	cur := *mustGet(t, s, key).ETag
	if err := s.Delete(ctx(t), &state.DeleteRequest{Key: key, ETag: &cur}); err != nil {
		t.Fatalf("delete with current etag: %v", err)
	}
	mustMiss(t, s, key)
	err = s.Delete(ctx(t), &state.DeleteRequest{Key: key, ETag: &cur})
	wantMismatch(t, "delete of a deleted key with its old etag", err)
}

func testInvalidOptions(t *testing.T, s state.Store, k *keys) {
	key := k.key("opts")
	err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`1`), Options: state.Options{Concurrency: "bogus"}})
	if err == nil {
		t.Fatal("set with concurrency \"bogus\" succeeded")
	}
	err = s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`1`), Metadata: map[string]string{state.MetadataTTL: "soon"}})
	if err == nil {
		t.Fatal("set with ttlInSeconds \"soon\" succeeded")
	}
	mustMiss(t, s, key)
}

func testTTL(t *testing.T, s state.Store, k *keys) {
	if !state.HasFeature(s.Features(), state.FeatureTTL) {
		t.Skip("store has no TTL")
	}
	short, kept := k.key("ttl-short"), k.key("ttl-kept")
	ttl := map[string]string{state.MetadataTTL: "2"}
	start := time.Now()
	for _, key := range []string{short, kept} {
		if err := s.Set(ctx(t), &state.SetRequest{Key: key, Value: []byte(`"v"`), Metadata: ttl}); err != nil {
			t.Fatalf("set with ttl: %v", err)
		}
	}
	r := mustGet(t, s, short)
	if exp, ok := r.Metadata[state.MetadataTTLExpireTime]; ok {
		at, err := time.Parse(time.RFC3339, exp)
		if err != nil || at.Before(start.Add(-2*time.Second)) || at.After(start.Add(5*time.Second)) {
			t.Errorf("ttlExpireTime %q (err %v) not about 2s after %v", exp, err, start)
		}
	}
	// -1 removes the TTL.
	if err := s.Set(ctx(t), &state.SetRequest{Key: kept, Value: []byte(`"kept"`),
		Metadata: map[string]string{state.MetadataTTL: "-1"}}); err != nil {
		t.Fatalf("set with ttl -1: %v", err)
	}
	deadline := time.Now().Add(8 * time.Second)
	for {
		r, err := s.Get(ctx(t), &state.GetRequest{Key: short})
		if err != nil {
			t.Fatalf("get: %v", err)
		}
		if r == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("value with a 2s TTL still there after %v", time.Since(start))
		}
		time.Sleep(100 * time.Millisecond)
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("value with a 2s TTL expired after only %v", time.Since(start))
	}
	jsonEqual(t, mustGet(t, s, kept).Data, `"kept"`)
	// An expired key is free for first-write again.
	if err := s.Set(ctx(t), &state.SetRequest{Key: short, Value: []byte(`"again"`),
		Options: state.Options{Concurrency: state.FirstWrite}}); err != nil {
		t.Fatalf("first-write on an expired key: %v", err)
	}
}

func testTransaction(t *testing.T, s state.Store, k *keys) {
	tx, ok := s.(state.Transactional)
	if !ok {
		t.Skip("store is not transactional")
	}
	a, b, c := k.key("tx-a"), k.key("tx-b"), k.key("tx-c")
	set(t, s, c, `"doomed"`)
	set(t, s, a, `"old"`)
	stale := *mustGet(t, s, a).ETag
	err := tx.Multi(ctx(t), &state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: a, Value: []byte(`{"v":"a"}`)}},
		{Upsert: &state.SetRequest{Key: b, Value: []byte{0, 1, 2}, IsBinary: true}},
		{Delete: &state.DeleteRequest{Key: c}},
	}})
	if err != nil {
		t.Fatalf("multi: %v", err)
	}
	jsonEqual(t, mustGet(t, s, a).Data, `{"v":"a"}`)
	if got := mustGet(t, s, b).Data; !bytes.Equal(got, []byte{0, 1, 2}) {
		t.Fatalf("b = %v", got)
	}
	mustMiss(t, s, c)

	// A failing etag anywhere leaves nothing written.
	etagA := *mustGet(t, s, a).ETag
	fresh := k.key("tx-fresh")
	cases := []struct {
		name string
		ops  []state.Operation
	}{
		{"stale upsert last", []state.Operation{
			{Upsert: &state.SetRequest{Key: fresh, Value: []byte(`"x"`)}},
			{Upsert: &state.SetRequest{Key: b, Value: []byte(`"x"`)}},
			{Upsert: &state.SetRequest{Key: a, Value: []byte(`"x"`), ETag: &stale}},
		}},
		{"stale delete", []state.Operation{
			{Upsert: &state.SetRequest{Key: fresh, Value: []byte(`"x"`)}},
			{Delete: &state.DeleteRequest{Key: a, ETag: &stale}},
		}},
		{"first-write on existing", []state.Operation{
			{Delete: &state.DeleteRequest{Key: b}},
			{Upsert: &state.SetRequest{Key: fresh, Value: []byte(`"x"`)}},
			{Upsert: &state.SetRequest{Key: a, Value: []byte(`"x"`), Options: state.Options{Concurrency: state.FirstWrite}}},
		}},
	}
	for _, tc := range cases {
		err := tx.Multi(ctx(t), &state.TransactionRequest{Operations: tc.ops})
		wantMismatch(t, "multi "+tc.name, err)
		mustMiss(t, s, fresh)
		r := mustGet(t, s, a)
		jsonEqual(t, r.Data, `{"v":"a"}`)
		if *r.ETag != etagA {
			t.Fatalf("multi %s: etag of a changed", tc.name)
		}
		mustGet(t, s, b)
	}

	// Etags from a get work inside a transaction.
	if err := tx.Multi(ctx(t), &state.TransactionRequest{Operations: []state.Operation{
		{Upsert: &state.SetRequest{Key: a, Value: []byte(`"new"`), ETag: &etagA}},
	}}); err != nil {
		t.Fatalf("multi with current etag: %v", err)
	}
	jsonEqual(t, mustGet(t, s, a).Data, `"new"`)
}

func testBulk(t *testing.T, s state.Store, k *keys) {
	var sets []state.SetRequest
	for i, name := range []string{"bulk-1", "bulk-2", "bulk-3"} {
		sets = append(sets, state.SetRequest{Key: k.key(name), Value: []byte{'1' + byte(i)}})
	}
	if err := state.BulkSet(ctx(t), s, sets); err != nil {
		t.Fatalf("bulk set: %v", err)
	}
	reqs := []state.GetRequest{{Key: sets[0].Key}, {Key: k.key("bulk-missing")}, {Key: sets[1].Key}, {Key: sets[2].Key}}
	got, err := state.BulkGet(ctx(t), s, reqs, 2)
	if err != nil {
		t.Fatalf("bulk get: %v", err)
	}
	if len(got) != len(reqs) {
		t.Fatalf("bulk get returned %d responses, want %d", len(got), len(reqs))
	}
	byKey := map[string]state.BulkGetResponse{}
	for _, r := range got {
		if r.Error != "" {
			t.Errorf("bulk get %q: %s", r.Key, r.Error)
		}
		byKey[r.Key] = r
	}
	for _, sr := range sets {
		r, ok := byKey[sr.Key]
		if !ok || string(r.Data) != string(sr.Value) || r.ETag == nil {
			t.Errorf("bulk get %q = %+v, want %q with an etag", sr.Key, r, sr.Value)
		}
	}
	if r, ok := byKey[reqs[1].Key]; !ok || r.Data != nil {
		t.Errorf("bulk get of a missing key = %+v, want a response with no data", r)
	}
	if err := state.BulkDelete(ctx(t), s, []state.DeleteRequest{{Key: sets[0].Key}, {Key: sets[1].Key}}); err != nil {
		t.Fatalf("bulk delete: %v", err)
	}
	mustMiss(t, s, sets[0].Key)
	mustMiss(t, s, sets[1].Key)
	mustGet(t, s, sets[2].Key)
}

func testConcurrentSets(t *testing.T, s state.Store, k *keys) {
	const workers, each = 8, 10
	shared := k.key("conc-shared")
	own := make([]string, workers)
	for i := range own {
		own[i] = k.key("conc-" + string(rune('a'+i)))
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*2)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				v := []byte(`{"w":` + string(rune('0'+w)) + `}`)
				if err := s.Set(context.Background(), &state.SetRequest{Key: own[w], Value: v}); err != nil {
					errs <- err
				}
				if err := s.Set(context.Background(), &state.SetRequest{Key: shared, Value: v}); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent set: %v", err)
	}
	for w := range own {
		jsonEqual(t, mustGet(t, s, own[w]).Data, `{"w":`+string(rune('0'+w))+`}`)
	}
	mustGet(t, s, shared)
}

func testConcurrentFirstWrite(t *testing.T, s state.Store, k *keys) {
	key := k.key("race")
	const n = 8
	var wg sync.WaitGroup
	results := make(chan error, n)
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- s.Set(context.Background(), &state.SetRequest{Key: key, Value: []byte(`"w"`),
				Options: state.Options{Concurrency: state.FirstWrite}})
		}()
	}
	wg.Wait()
	close(results)
	wins := 0
	for err := range results {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, state.ErrETagMismatch):
			t.Errorf("first-write race: unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d of %d concurrent first-writes won, want exactly 1", wins, n)
	}
}

// testOptimisticIncrements runs the read-modify-write loop apps use with
// ETags; no increment may be lost.
func testOptimisticIncrements(t *testing.T, s state.Store, k *keys) {
	key := k.key("counter")
	set(t, s, key, `0`)
	const workers, each = 4, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; {
				r, err := s.Get(context.Background(), &state.GetRequest{Key: key})
				if err != nil || r == nil {
					errs <- errors.Join(err, errors.New("counter missing"))
					return
				}
				var n int
				if err := json.Unmarshal(r.Data, &n); err != nil {
					errs <- err
					return
				}
				next, _ := json.Marshal(n + 1)
				err = s.Set(context.Background(), &state.SetRequest{Key: key, Value: next, ETag: r.ETag,
					Options: state.Options{Concurrency: state.FirstWrite}})
				switch {
				case err == nil:
					i++
				case errors.Is(err, state.ErrETagMismatch):
					// lost the race: read again
				default:
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("increment: %v", err)
	}
	jsonEqual(t, mustGet(t, s, key).Data, `20`)
}

func testQuery(t *testing.T, s state.Store, k *keys) {
	q, ok := s.(state.Querier)
	if !ok {
		t.Skip("store has no query API")
	}
	suite := k.prefix
	docs := map[string]string{
		"q-1": `{"suite":"` + suite + `","n":1,"city":"Oslo","person":{"org":"dev"}}`,
		"q-2": `{"suite":"` + suite + `","n":2,"city":"Lima","person":{"org":"ops"}}`,
		"q-3": `{"suite":"` + suite + `","n":3,"city":"Oslo","person":{"org":"ops"}}`,
		"q-4": `{"suite":"` + suite + `","n":4,"city":"Rome","person":{"org":"dev"}}`,
	}
	for name, doc := range docs {
		set(t, s, k.key(name), doc)
	}
	run := func(js string) *state.QueryResponse {
		t.Helper()
		parsed, err := state.ParseQuery([]byte(js))
		if err != nil {
			t.Fatalf("parse %s: %v", js, err)
		}
		r, err := q.Query(ctx(t), &state.QueryRequest{Query: *parsed})
		if err != nil {
			t.Fatalf("query %s: %v", js, err)
		}
		return r
	}
	keysOf := func(r *state.QueryResponse) []string {
		var out []string
		for _, it := range r.Results {
			if it.ETag == nil {
				t.Errorf("query result %q has no etag", it.Key)
			}
			out = append(out, it.Key)
		}
		return out
	}
	want := func(names ...string) []string {
		var out []string
		for _, n := range names {
			out = append(out, k.prefix+n)
		}
		return out
	}
	bySuite := `{"EQ":{"suite":"` + suite + `"}}`
	r := run(`{"filter":{"AND":[` + bySuite + `,{"IN":{"city":["Oslo","Rome"]}}]},"sort":[{"key":"n","order":"DESC"}],"page":{"limit":2}}`)
	if got := keysOf(r); !reflect.DeepEqual(got, want("q-4", "q-3")) {
		t.Fatalf("page 1 = %v, want %v", got, want("q-4", "q-3"))
	}
	if r.Token == "" {
		t.Fatal("page 1 has no token")
	}
	r = run(`{"filter":{"AND":[` + bySuite + `,{"IN":{"city":["Oslo","Rome"]}}]},"sort":[{"key":"n","order":"DESC"}],"page":{"limit":2,"token":"` + r.Token + `"}}`)
	if got := keysOf(r); !reflect.DeepEqual(got, want("q-1")) {
		t.Fatalf("page 2 = %v, want %v", got, want("q-1"))
	}
	r = run(`{"filter":{"AND":[` + bySuite + `,{"OR":[{"EQ":{"person.org":"dev"}},{"EQ":{"city":"Lima"}}]}]},"sort":[{"key":"n"}]}`)
	if got := keysOf(r); !reflect.DeepEqual(got, want("q-1", "q-2", "q-4")) {
		t.Fatalf("OR query = %v, want %v", got, want("q-1", "q-2", "q-4"))
	}
	jsonEqual(t, r.Results[0].Data, docs["q-1"])
}

func testDeleteWithPrefix(t *testing.T, s state.Store, k *keys) {
	pd, ok := s.(state.PrefixDeleter)
	if !ok {
		t.Skip("store has no DeleteWithPrefix")
	}
	base := k.key("dwp")
	under := []string{k.key("dwp||a"), k.key("dwp||b")}
	kept := []string{base, k.key("dwpx||c"), k.key("dwp||sub||d"), k.key("other||e")}
	for _, key := range append(append([]string{}, under...), kept...) {
		set(t, s, key, `1`)
	}
	// Without the trailing separator: Dapr appends it.
	r, err := pd.DeleteWithPrefix(ctx(t), &state.DeleteWithPrefixRequest{Prefix: base})
	if err != nil {
		t.Fatalf("delete with prefix %q: %v", base, err)
	}
	if r.Count != int64(len(under)) {
		t.Errorf("count = %d, want %d", r.Count, len(under))
	}
	for _, key := range under {
		mustMiss(t, s, key)
	}
	for _, key := range kept {
		mustGet(t, s, key)
	}
	r, err = pd.DeleteWithPrefix(ctx(t), &state.DeleteWithPrefixRequest{Prefix: base + "||"})
	if err != nil || r.Count != 0 {
		t.Errorf("second delete = %+v, %v; want count 0", r, err)
	}
	for _, p := range []string{"", "||"} {
		if _, err := pd.DeleteWithPrefix(ctx(t), &state.DeleteWithPrefixRequest{Prefix: p}); err == nil {
			t.Errorf("delete with prefix %q: no error", p)
		}
	}
}

func testKeysLike(t *testing.T, s state.Store, k *keys) {
	kl, ok := s.(state.KeysLiker)
	if !ok {
		t.Skip("store has no KeysLike")
	}
	base := k.key("kl")
	names := []string{"a1", "a2", "b1", "ab12", "p%q", "pzq", "u_v", "uxv", "sub||a3"}
	for _, n := range names {
		set(t, s, k.key("kl||"+n), `1`)
	}
	set(t, s, k.key("klx||a1"), `1`)
	list := func(req *state.KeysLikeRequest) *state.KeysLikeResponse {
		t.Helper()
		r, err := kl.KeysLike(ctx(t), req)
		if err != nil {
			t.Fatalf("keys like %q: %v", req.Pattern, err)
		}
		return r
	}
	tests := []struct {
		pattern string
		want    []string
	}{
		{"||a%", []string{"a1", "a2", "ab12"}},
		{"||_1", []string{"a1", "b1"}},
		{"||a_", []string{"a1", "a2"}},
		{`||p\%q`, []string{"p%q"}},
		{"||p%q", []string{"p%q", "pzq"}},
		{`||u\_v`, []string{"u_v"}},
		{"||%||%", []string{"sub||a3"}},
		{"||nothing%", nil},
	}
	for _, tc := range tests {
		t.Run(tc.pattern, func(t *testing.T) {
			r := list(&state.KeysLikeRequest{Pattern: base + tc.pattern})
			var want []string
			for _, n := range tc.want {
				want = append(want, base+"||"+n)
			}
			if !sameSet(r.Keys, want) {
				t.Errorf("keys = %q, want %q", r.Keys, want)
			}
			if r.ContinuationToken != nil {
				t.Errorf("token %q without a page size", *r.ContinuationToken)
			}
		})
	}
	t.Run("Pages", func(t *testing.T) {
		size := uint32(2)
		seen := map[string]int{}
		req := &state.KeysLikeRequest{Pattern: base + "||%", PageSize: &size}
		for pages := 0; ; pages++ {
			if pages > len(names) {
				t.Fatalf("more than %d pages", pages)
			}
			r := list(req)
			if len(r.Keys) > int(size) {
				t.Fatalf("page of %d keys, page size %d", len(r.Keys), size)
			}
			for _, key := range r.Keys {
				seen[key]++
			}
			if r.ContinuationToken == nil {
				break
			}
			req.ContinuationToken = r.ContinuationToken
		}
		if len(seen) != len(names) {
			t.Errorf("pages listed %d keys, want %d: %v", len(seen), len(names), seen)
		}
		for key, n := range seen {
			if n != 1 {
				t.Errorf("key %q listed %d times", key, n)
			}
		}
	})
	if _, err := kl.KeysLike(ctx(t), &state.KeysLikeRequest{}); err == nil {
		t.Error("empty pattern: no error")
	}
}

// sameSet reports whether a and b hold the same strings, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	m := map[string]int{}
	for _, x := range a {
		m[x]++
	}
	for _, x := range b {
		m[x]--
		if m[x] < 0 {
			return false
		}
	}
	return true
}

// KeysLikeOrder checks a KeysLiker's listing order, which Dapr's workflow
// API passes on (ListInstanceIDs): Dapr's state.sqlite lists keys in the
// order they were first written, its state.in-memory in the order they
// were last written (lastWrite). Pages of one key must continue where the
// previous ended.
func KeysLikeOrder(t *testing.T, s state.Store, lastWrite bool) {
	t.Helper()
	kl, ok := s.(state.KeysLiker)
	if !ok {
		t.Fatalf("%T is not a KeysLiker", s)
	}
	k := newKeys(t, s)
	c, a, b := k.key("order||c"), k.key("order||a"), k.key("order||b")
	for _, key := range []string{c, a, b, c} {
		set(t, s, key, `"v"`)
	}
	want := []string{c, a, b}
	if lastWrite {
		want = []string{a, b, c}
	}
	pattern := strings.TrimSuffix(c, "order||c") + "order||%"
	resp, err := kl.KeysLike(ctx(t), &state.KeysLikeRequest{Pattern: pattern})
	if err != nil {
		t.Fatalf("keys like: %v", err)
	}
	if !slices.Equal(resp.Keys, want) || resp.ContinuationToken != nil {
		t.Fatalf("keys like = %q (token %v), want %q and no token", resp.Keys, resp.ContinuationToken, want)
	}
	var paged []string
	one := uint32(1)
	req := &state.KeysLikeRequest{Pattern: pattern, PageSize: &one}
	for range len(want) + 1 {
		resp, err := kl.KeysLike(ctx(t), req)
		if err != nil {
			t.Fatalf("keys like page: %v", err)
		}
		paged = append(paged, resp.Keys...)
		if resp.ContinuationToken == nil {
			break
		}
		req.ContinuationToken = resp.ContinuationToken
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("keys like by pages of one = %q, want %q", paged, want)
	}
}
