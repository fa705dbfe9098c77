// Package acl evaluates Dapr's service-invocation access control
// (Configuration spec.accessControl) on the callee's sidecar.
//
// Compile turns the spec into an ACL once; ACL.Allow then decides a call
// from the caller's identity (the SPIFFE ID in its certificate), the method
// path and the HTTP verb without allocating per policy. The semantics are
// Dapr 1.18's (pkg/acl and pkg/config/acl_trie.go):
//
//   - no accessControl section, or one with no default action, trust domain
//     or policies: everything is allowed;
//   - policies but no global defaultAction: the global default is deny;
//   - a caller without a certificate identity, with no policy for its
//     appId||namespace, or whose trust domain differs from the policy's,
//     gets the global default;
//   - a matching policy's defaultAction (if set) replaces the global one;
//   - the operation path is normalised (dot segments, duplicate and
//     trailing slashes, unnecessary escapes), prefixed with "/" and, for an
//     HTTP app, lower-cased, then matched segment by segment: "/*" is one
//     segment (and the path without it), "/**" any rest, "*" inside a
//     segment any characters; the first pattern added wins ties;
//   - for an HTTP app the verb's action (or "*"'s) decides; a call without
//     a verb gets the policy's defaultAction (deny when it is empty); for a
//     gRPC app the operation's action decides.
//
// It lives under proxy with apiaccess: the two packages that decide who may
// call what at the sidecar's edge (acl: which callers may invoke this app;
// apiaccess: which Dapr APIs this app may use). It imports only config and
// identity; cmd/tandemd wires ACL.Check into the invocation server and the
// gRPC proxy.
package acl
