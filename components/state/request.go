package state

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Well-known request and response metadata keys.
const (
	// MetadataTTL is the request metadata key for a time to live in seconds.
	MetadataTTL = "ttlInSeconds"
	// MetadataContentType is the request metadata key for the value's
	// content type.
	MetadataContentType = "contentType"
	// MetadataTTLExpireTime is the response metadata key holding the expiry
	// time (RFC 3339, UTC) of a value with a TTL, as Dapr returns it.
	MetadataTTLExpireTime = "ttlExpireTime"
)

// Concurrency is the optimistic concurrency mode of a write.
type Concurrency string

// Dapr's concurrency modes. The empty value behaves as LastWrite.
const (
	FirstWrite Concurrency = "first-write"
	LastWrite  Concurrency = "last-write"
)

// Consistency is the consistency asked of a read or write. Stores that have
// a single copy treat both alike.
type Consistency string

// Dapr's consistency levels. The empty value behaves as Eventual.
const (
	Strong   Consistency = "strong"
	Eventual Consistency = "eventual"
)

// Options are a request's concurrency and consistency.
type Options struct {
	Concurrency Concurrency
	Consistency Consistency
}

// Validate rejects unknown modes, as Dapr's CheckRequestOptions does.
func (o Options) Validate() error {
	switch o.Concurrency {
	case "", FirstWrite, LastWrite:
	default:
		return fmt.Errorf("unrecognized concurrency model %q: use first-write or last-write", o.Concurrency)
	}
	switch o.Consistency {
	case "", Strong, Eventual:
	default:
		return fmt.Errorf("unrecognized consistency model %q: use strong or eventual", o.Consistency)
	}
	return nil
}

// GetRequest reads one key.
type GetRequest struct {
	Key      string
	Metadata map[string]string
	Options  Options
}

// GetResponse is a stored value. Stores return a nil *GetResponse for a
// missing key; a found value always has non-nil Data.
type GetResponse struct {
	Data []byte
	// ETag is the value's current version, nil for stores without ETags.
	ETag *string
	// Metadata may hold MetadataTTLExpireTime.
	Metadata map[string]string
}

// SetRequest writes one key.
type SetRequest struct {
	Key string
	// Value is a JSON document, unless IsBinary is set.
	Value []byte
	// IsBinary says Value is opaque bytes rather than JSON: Dapr's gRPC
	// SaveState values are binary unless their metadata contentType is
	// application/json, HTTP values are JSON. Stores with a JSON layout
	// (postgresql, sqlite) keep binary values base64-encoded with a binary
	// flag, exactly as Dapr does, and give the same bytes back.
	IsBinary bool
	// ETag, when non-nil and non-empty, must match the stored version.
	ETag     *string
	Metadata map[string]string
	Options  Options
}

// DeleteRequest deletes one key.
type DeleteRequest struct {
	Key      string
	ETag     *string
	Metadata map[string]string
	Options  Options
}

// BulkGetResponse is one key's answer in a bulk get. Error is set (and Data
// nil) when reading that key failed; Data is nil when the key is missing.
type BulkGetResponse struct {
	Key      string
	Data     []byte
	ETag     *string
	Metadata map[string]string
	Error    string
}

// Operation is one step of a transaction: exactly one of Upsert and Delete is
// set.
type Operation struct {
	Upsert *SetRequest
	Delete *DeleteRequest
}

// Key returns the operation's key.
func (o Operation) Key() string {
	if o.Upsert != nil {
		return o.Upsert.Key
	}
	if o.Delete != nil {
		return o.Delete.Key
	}
	return ""
}

// TransactionRequest is a list of operations applied atomically.
type TransactionRequest struct {
	Operations []Operation
	Metadata   map[string]string
}

// Validate checks what every store checks before a delete: a key, and
// options it knows.
func (r *DeleteRequest) Validate() error {
	if r.Key == "" {
		return errors.New("delete: missing key")
	}
	if err := r.Options.Validate(); err != nil {
		return fmt.Errorf("delete %q: %w", r.Key, err)
	}
	return nil
}

// SetConflict is the error of a conditional set of key that wrote nothing:
// etag was stale, or (no etag) first-write found the key already there.
func SetConflict(key string, etag *string) error {
	if HasETag(etag) {
		return fmt.Errorf("set %q: %w", key, ErrETagMismatch)
	}
	return fmt.Errorf("set %q: key exists and first-write was asked without an etag: %w", key, ErrETagMismatch)
}

// Validate checks every operation has exactly one request, a key and valid
// options.
func (r *TransactionRequest) Validate() error {
	for i, op := range r.Operations {
		if (op.Upsert == nil) == (op.Delete == nil) {
			return fmt.Errorf("transaction operation %d: exactly one of upsert and delete must be set", i)
		}
		var opts Options
		if op.Upsert != nil {
			opts = op.Upsert.Options
		} else {
			opts = op.Delete.Options
		}
		if op.Key() == "" {
			return fmt.Errorf("transaction operation %d: missing key", i)
		}
		if err := opts.Validate(); err != nil {
			return fmt.Errorf("transaction operation %d: %w", i, err)
		}
	}
	return nil
}

// HasETag reports whether an ETag was given: Dapr treats nil and "" alike.
func HasETag(etag *string) bool { return etag != nil && *etag != "" }

// ParseTTL reads metadata ttlInSeconds. It returns ok=false when absent;
// a positive ttl means expiry, and -1 or 0 mean "no expiry" (overriding a
// store's default TTL). Values below -1 and non-integers are errors.
func ParseTTL(md map[string]string) (ttl time.Duration, ok bool, err error) {
	v, found := md[MetadataTTL]
	if !found || v == "" {
		return 0, false, nil
	}
	n, err := strconv.ParseInt(v, 10, 32)
	if err != nil {
		return 0, false, fmt.Errorf("metadata %s: %q is not an integer number of seconds", MetadataTTL, v)
	}
	if n < -1 {
		return 0, false, fmt.Errorf("metadata %s: %d: must be -1 (no expiry) or greater", MetadataTTL, n)
	}
	if n <= 0 {
		return 0, true, nil
	}
	return time.Duration(n) * time.Second, true, nil
}

// TTLSeconds is ParseTTL in whole seconds (0 = no expiry), for stores that
// build SQL or Redis commands.
func TTLSeconds(md map[string]string) (int, bool, error) {
	d, ok, err := ParseTTL(md)
	return int(d / time.Second), ok, err
}

// ExpireTimeMetadata returns response metadata carrying an expiry time.
func ExpireTimeMetadata(t time.Time) map[string]string {
	return map[string]string{MetadataTTLExpireTime: t.UTC().Format(time.RFC3339)}
}
