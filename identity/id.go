package identity

import (
	"fmt"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// DefaultTrustDomain is the trust domain of app identities when the
// Configuration does not name one (Dapr's default).
const DefaultTrustDomain = "public"

// DefaultNamespace is the namespace of app identities when NAMESPACE is unset.
const DefaultNamespace = "default"

// AppID returns the SPIFFE ID spiffe://<trustDomain>/ns/<namespace>/<appID>.
func AppID(trustDomain, namespace, appID string) (spiffeid.ID, error) {
	if namespace == "" || appID == "" {
		return spiffeid.ID{}, fmt.Errorf("spiffe id: namespace and app id must not be empty")
	}
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("spiffe id: trust domain %q: %w", trustDomain, err)
	}
	id, err := spiffeid.FromSegments(td, "ns", namespace, appID)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("spiffe id for app %q in namespace %q: %w", appID, namespace, err)
	}
	return id, nil
}

// App is the parsed form of an app's SPIFFE ID.
type App struct {
	TrustDomain string
	Namespace   string
	AppID       string
}

// ParseApp splits a SPIFFE ID of the form spiffe://td/ns/<namespace>/<appID>.
func ParseApp(id spiffeid.ID) (App, error) {
	parts := strings.Split(strings.TrimPrefix(id.Path(), "/"), "/")
	if len(parts) != 3 || parts[0] != "ns" || parts[1] == "" || parts[2] == "" {
		return App{}, fmt.Errorf("spiffe id %q is not of the form spiffe://<trust-domain>/ns/<namespace>/<app-id>", id)
	}
	return App{TrustDomain: id.TrustDomain().Name(), Namespace: parts[1], AppID: parts[2]}, nil
}

// String returns the SPIFFE ID in URI form.
func (a App) String() string {
	return "spiffe://" + a.TrustDomain + "/ns/" + a.Namespace + "/" + a.AppID
}
