package state

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
)

// JSONColumn is a value as Dapr's SQL stores with a JSON column keep it
// (postgresql v1, mysql): a JSON value as it came, a binary one as a JSON
// string of its base64 with the binary flag set. A value sent as JSON that
// is not JSON is an error saying how to send it.
func JSONColumn(req *SetRequest) (value string, isBinary bool, err error) {
	if req.IsBinary {
		b, _ := json.Marshal(base64.StdEncoding.EncodeToString(req.Value))
		return string(b), true, nil
	}
	if !json.Valid(req.Value) {
		return "", false, errors.New("value is not JSON; send it as binary (gRPC without contentType application/json)")
	}
	return string(req.Value), false, nil
}

// FromJSONColumn turns a value stored by JSONColumn back into the bytes
// that were saved.
func FromJSONColumn(value []byte, isBinary bool) ([]byte, error) {
	if !isBinary {
		return value, nil
	}
	var s string
	if err := json.Unmarshal(value, &s); err != nil {
		return nil, fmt.Errorf("stored binary value is not a JSON string: %w", err)
	}
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("stored binary value is not base64: %w", err)
	}
	return b, nil
}

// UpsertOps are the operations of a transaction writing reqs, for stores
// whose BulkSet is one transaction.
func UpsertOps(reqs []SetRequest) []Operation {
	ops := make([]Operation, len(reqs))
	for i := range reqs {
		ops[i].Upsert = &reqs[i]
	}
	return ops
}

// DeleteOps are the operations of a transaction deleting reqs.
func DeleteOps(reqs []DeleteRequest) []Operation {
	ops := make([]Operation, len(reqs))
	for i := range reqs {
		ops[i].Delete = &reqs[i]
	}
	return ops
}
