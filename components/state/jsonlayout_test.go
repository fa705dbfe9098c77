package state

import (
	"bytes"
	"testing"
)

func TestJSONColumn(t *testing.T) {
	tests := []struct {
		name       string
		req        SetRequest
		wantValue  string
		wantBinary bool
		wantErr    bool
	}{
		{"json", SetRequest{Value: []byte(`{"a":1}`)}, `{"a":1}`, false, false},
		{"binary", SetRequest{Value: []byte{0xff, 0}, IsBinary: true}, `"/wA="`, true, false},
		{"binary json-looking", SetRequest{Value: []byte(`{"a":1}`), IsBinary: true}, `"eyJhIjoxfQ=="`, true, false},
		{"not json", SetRequest{Value: []byte(`not json`)}, "", false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, b, err := JSONColumn(&tc.req)
			if (err != nil) != tc.wantErr || v != tc.wantValue || b != tc.wantBinary {
				t.Fatalf("JSONColumn = %q, %v, %v; want %q, %v, error %v", v, b, err, tc.wantValue, tc.wantBinary, tc.wantErr)
			}
			if err != nil {
				return
			}
			back, err := FromJSONColumn([]byte(v), b)
			if err != nil || !bytes.Equal(back, tc.req.Value) {
				t.Fatalf("FromJSONColumn = %q, %v; want %q", back, err, tc.req.Value)
			}
		})
	}
	for _, bad := range []string{`1`, `"not base64!"`} {
		if _, err := FromJSONColumn([]byte(bad), true); err == nil {
			t.Errorf("FromJSONColumn(%s, binary) succeeded", bad)
		}
	}
}

func TestOps(t *testing.T) {
	sets := []SetRequest{{Key: "a"}, {Key: "b"}}
	ops := UpsertOps(sets)
	if len(ops) != 2 || ops[0].Upsert != &sets[0] || ops[1].Upsert != &sets[1] || ops[0].Delete != nil {
		t.Fatalf("UpsertOps = %+v", ops)
	}
	dels := []DeleteRequest{{Key: "a"}}
	ops = DeleteOps(dels)
	if len(ops) != 1 || ops[0].Delete != &dels[0] || ops[0].Upsert != nil {
		t.Fatalf("DeleteOps = %+v", ops)
	}
}
