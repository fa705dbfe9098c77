package inspect

import (
	"context"
	"time"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/localsentry"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
	"github.com/tandemrun/tandem/sentry/ca"
)

// Overview is everything `tandem status` and the dashboard show.
type Overview struct {
	Home   string       `json:"home"`
	Sentry SentryStatus `json:"sentry"`
	CA     *CAStatus    `json:"ca,omitempty"`
	Apps   []*App       `json:"apps"`
	Time   time.Time    `json:"time"`
}

// SentryStatus is the local sentry's state.
type SentryStatus struct {
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address,omitempty"`
	// Placement is the address of the actor placement service the same
	// process runs.
	Placement string `json:"placement,omitempty"`
	// XDS is the address of the xDS server for proxyless gRPC apps the
	// same process runs.
	XDS     string    `json:"xds,omitempty"`
	Started time.Time `json:"started,omitzero"`
}

// CAStatus is the local CA's validity.
type CAStatus struct {
	RootSubject    string    `json:"rootSubject"`
	RootNotAfter   time.Time `json:"rootNotAfter"`
	IssuerNotAfter time.Time `json:"issuerNotAfter"`
}

// Collect inspects the home's sentry, CA and running apps.
func Collect(ctx context.Context, h *home.Home) (*Overview, error) {
	recs, err := registry.Dir(h.AppsDir()).List()
	if err != nil {
		return nil, err
	}
	ov := &Overview{Home: h.Dir, Time: time.Now().UTC(), Apps: Inspect(ctx, recs)}
	if s, err := registry.LoadSentry(h.SentryFile()); err == nil {
		ov.Sentry = SentryStatus{Running: localsentry.Healthy(ctx, s), PID: s.PID, Address: s.Address, Placement: s.PlacementAddress, XDS: s.XDSAddress, Started: s.Started}
	}
	if b, err := ca.LoadBundle(ca.DefaultPaths(h.CertsDir())); err == nil {
		ov.CA = &CAStatus{RootSubject: b.TrustAnchors[0].Subject.String(), RootNotAfter: b.TrustAnchors[0].NotAfter, IssuerNotAfter: b.IssuerChain[0].NotAfter}
	}
	if ov.Apps == nil {
		ov.Apps = []*App{}
	}
	return ov, nil
}
