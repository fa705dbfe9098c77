// Package apiaccess enforces a Configuration's spec.api allow and deny
// lists on the sidecar's public HTTP and gRPC APIs, as daprd does.
//
// Dapr's rules, kept here:
//   - A rule applies to one protocol: "http" or "grpc". A rule without a
//     protocol is ignored by daprd 1.18 (it matches neither); Compile keeps
//     that and reports it in Warnings.
//   - Per protocol: no rules means everything is allowed; a denied rule
//     wins over an allowed one; with allowed rules, only those answer.
//   - HTTP rules name a group and either the URL version ("v1.0",
//     "v1.0-alpha1") or the group version ("v1", "v1alpha1"). The health
//     endpoints are always allowed. A refused HTTP route behaves as if it
//     were not registered: it falls through to service invocation when that
//     is allowed (404 ERR_DIRECT_INVOKE without an app ID), else a plain 404.
//   - gRPC rules use group versions and a fixed table of methods of
//     dapr.proto.runtime.v1.Dapr; only methods of dapr.proto.runtime.* are
//     checked, so proxied gRPC calls pass. A refused call fails with
//     codes.Unimplemented, as in daprd.
//
// It lives under proxy with acl: the two packages that decide who may call
// what at the sidecar's edge (acl: which callers may invoke this app;
// apiaccess: which Dapr APIs this app may use). It imports only config of
// Tandem; cmd/tandemd wires it in front of the APIs.
package apiaccess
