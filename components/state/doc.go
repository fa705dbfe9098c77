// Package state defines Tandem's state store building block: the Store
// interface every backend implements, its optional capabilities
// (Transactional, BulkStore, Querier, PrefixDeleter, KeysLiker) found by type
// assertion, each reported as its Feature in /v1.0/metadata, the request
// and response types, the sentinel errors the API layer maps to Dapr's status
// codes, and the helpers shared by all backends (key prefixes, TTL parsing,
// the query language, SQL LIKE patterns, a generic bulk fallback).
//
// Semantics follow Dapr's components-contrib state stores so that an app sees
// the same behaviour, and backends keep data in the same layout as Dapr's so
// data written by Dapr and by Tandem is interchangeable:
//
//   - An ETag given with a write is always checked, whatever the concurrency
//     mode: a stale or unknown ETag fails with ErrETagMismatch and writes
//     nothing. An empty ETag counts as no ETag.
//   - First-write without an ETag succeeds only when the key does not exist
//     (or has expired); otherwise ErrETagMismatch.
//   - Last-write without an ETag always writes.
//   - Metadata "ttlInSeconds" sets a time to live; -1 (or 0) means none.
//
// Keys arrive here already prefixed: the API layer applies KeyPrefix (Dapr's
// keyPrefix component option, "<appId>||<key>" by default) before calling a
// store, and strips it with KeyPrefix.Original on the way out.
//
// Backends live in subpackages (inmemory, sqlite, redis, postgresql, mysql); the
// conformance suite all of them pass is in statetest; builtin lists them.
// This package imports only components (for Metadata).
package state
