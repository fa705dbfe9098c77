package injector

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
)

// DefaultAllowedCallers are the service accounts ("namespace:name") whose
// pod creations get a sidecar with no configuration: Kubernetes' workload
// controllers and the operators Dapr's injector allows by default.
var DefaultAllowedCallers = []string{
	"kube-system:replicaset-controller",
	"kube-system:replication-controller",
	"kube-system:deployment-controller",
	"kube-system:cronjob-controller",
	"kube-system:job-controller",
	"kube-system:statefulset-controller",
	"kube-system:daemon-set-controller",
	"openshift-operator-lifecycle-manager:olm-operator-serviceaccount",
	"tekton-pipelines:tekton-pipelines-controller",
	"mirrord:mirrord-operator",
}

// systemMasters is the group of the cluster's administrators, whose pods are
// always injected.
const systemMasters = "system:masters"

const serviceAccountUserPrefix = "system:serviceaccount:"

// Callers decides whose pod creations get a sidecar, as Dapr's injector:
// a service account matching one of the "namespace:name" glob patterns
// (path.Match syntax in each part), one whose UID was looked up from such
// an entry at start, or a member of system:masters. A pod created by anyone
// else is admitted unchanged, so a user who may create pods but is none of
// these cannot obtain a sidecar, and with it an app's identity, by
// annotating a pod.
type Callers struct {
	patterns [][2]string
	uids     []string
}

// NewCallers parses patterns ("namespace:name", globs allowed; empty
// entries skipped) and keeps uids.
func NewCallers(patterns []string, uids []string) (*Callers, error) {
	c := &Callers{uids: slices.Clone(uids)}
	for _, p := range patterns {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		ns, name, ok := strings.Cut(p, ":")
		if !ok || strings.Contains(name, ":") {
			return nil, fmt.Errorf("allowed service account %q: want exactly one ':' between namespace and name", p)
		}
		ns, name = strings.TrimSpace(ns), strings.TrimSpace(name)
		if ns == "" && name == "" {
			return nil, errors.New("allowed service account: namespace and name cannot both be empty")
		}
		for _, part := range []string{ns, name} {
			if _, err := path.Match(part, ""); err != nil {
				return nil, fmt.Errorf("allowed service account %q: bad pattern %q: %w", p, part, err)
			}
		}
		c.patterns = append(c.patterns, [2]string{ns, name})
	}
	return c, nil
}

// AllowUIDs adds the UIDs of service accounts looked up from the exact
// patterns; call it before the Callers are used.
func (c *Callers) AllowUIDs(uids ...string) { c.uids = append(c.uids, uids...) }

// Exact returns the patterns that name one service account (no glob), for
// the UID look-up.
func (c *Callers) Exact() [][2]string {
	var out [][2]string
	for _, p := range c.patterns {
		if !strings.ContainsAny(p[0]+p[1], `*?[\`) {
			out = append(out, p)
		}
	}
	return out
}

// Allowed reports whether u may have sidecars injected.
func (c *Callers) Allowed(u authenticationv1.UserInfo) bool {
	if slices.Contains(u.Groups, systemMasters) || (u.UID != "" && slices.Contains(c.uids, u.UID)) {
		return true
	}
	rest, ok := strings.CutPrefix(u.Username, serviceAccountUserPrefix)
	if !ok {
		return false
	}
	ns, name, ok := strings.Cut(rest, ":")
	if !ok {
		return false
	}
	for _, p := range c.patterns {
		nsOK, _ := path.Match(p[0], ns)
		nameOK, _ := path.Match(p[1], name)
		if nsOK && nameOK {
			return true
		}
	}
	return false
}
