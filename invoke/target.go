package invoke

import (
	"errors"
	"fmt"
	"strings"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
)

// Metadata keys Dapr's sidecars exchange besides the caller/callee keys.
const (
	// DestinationAppIDKey names the invoked app in the internal request
	// metadata (daprd's invokev1.DestinationIDHeader).
	DestinationAppIDKey = "destination-app-id"
	// AppIDKey is the gRPC metadata an app sets on its own gRPC stub to have
	// the sidecar proxy the call to another app (gRPC proxying).
	AppIDKey = "dapr-app-id"
)

// ErrInvalidAppID is returned for a target that is neither "app" nor
// "app.namespace".
var ErrInvalidAppID = errors.New("invalid app id")

// SplitAppID splits a target of the form "app" or "app.namespace" (Dapr's
// cross-namespace form); a bare app ID is in defaultNamespace.
func SplitAppID(target, defaultNamespace string) (appID, namespace string, err error) {
	if target == "" {
		return "", "", fmt.Errorf("%w: empty; name the app to invoke", ErrInvalidAppID)
	}
	appID, namespace, found := strings.Cut(target, ".")
	if !found {
		return target, defaultNamespace, nil
	}
	if appID == "" || namespace == "" || strings.Contains(namespace, ".") {
		return "", "", fmt.Errorf("%w %q: use \"app\" or \"app.namespace\"", ErrInvalidAppID, target)
	}
	return appID, namespace, nil
}

// setMeta replaces the values of key in md with the single value v. It
// never writes into an existing value list, which may be shared with the
// caller's own header map.
func setMeta(md map[string]*internalsv1.ListStringValue, key, v string) {
	if !hasMeta(md, key, v) {
		md[key] = &internalsv1.ListStringValue{Values: []string{v}}
	}
}

// hasMeta reports whether key's values in md are v alone.
func hasMeta(md map[string]*internalsv1.ListStringValue, key, v string) bool {
	cur := md[key]
	return cur != nil && len(cur.Values) == 1 && cur.Values[0] == v
}

// RoutingEntries is how many metadata entries Client.Invoke adds to a
// request's (the destination, caller and callee app IDs and the caller's
// namespace), for a caller that sizes the map.
const RoutingEntries = 4

// RoutingRoom is room for the RoutingEntries a call's metadata gets
// (Request.Routing). It must live as long as the request's message.
type RoutingRoom struct{ slab metaSlab }

// metaSlab gives setMeta's single-value lists out of one allocation: a
// call sets four keys on its way out (Client.Invoke), eight allocations
// otherwise.
type metaSlab struct {
	lists [RoutingEntries]internalsv1.ListStringValue
	vals  [RoutingEntries][1]string
	n     int
}

// set is setMeta with the list taken from the slab while it lasts.
func (s *metaSlab) set(md map[string]*internalsv1.ListStringValue, key, v string) {
	if s.n == len(s.lists) {
		setMeta(md, key, v)
		return
	}
	if hasMeta(md, key, v) {
		return
	}
	l := &s.lists[s.n]
	s.vals[s.n][0] = v
	l.Values = s.vals[s.n][:]
	s.n++
	md[key] = l
}

// firstMeta returns the first value of key in md.
func firstMeta(md map[string]*internalsv1.ListStringValue, key string) string {
	if l := md[key]; l != nil && len(l.Values) > 0 {
		return l.Values[0]
	}
	return ""
}
