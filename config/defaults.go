package config

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// Defaults, as in Dapr 1.18.
const (
	// DefaultTrustDomain is the SPIFFE trust domain of apps when
	// accessControl.trustDomain is unset.
	DefaultTrustDomain = "public"
	// DefaultWorkloadCertTTL is the lifetime of a workload certificate.
	DefaultWorkloadCertTTL = 24 * time.Hour
	// DefaultAllowedClockSkew is how far NotBefore is back-dated.
	DefaultAllowedClockSkew = 15 * time.Minute
)

// defaultFeature reports the features that are on unless a file disables
// them (Dapr's defaultFeatures).
func defaultFeature(name string) bool {
	switch name {
	case "HotReload", "WorkflowsRemoteActivityReminder":
		return true
	}
	return false
}

// Default returns the configuration daprd runs with when no --config is
// given: ACL default action allow in trust domain "public", mTLS off with
// Dapr's certificate TTL and clock skew, tracing off, metrics on, and no
// name resolution component (the caller picks its own default).
//
// Files are decoded on top of Default, field by field, like Dapr does; so a
// file that has accessControl.policies but no defaultAction keeps "allow".
func Default() *Configuration {
	return &Configuration{
		APIVersion: APIVersion,
		Kind:       Kind,
		Source:     "(default configuration)",
		Spec: Spec{
			AccessControl: AccessControl{DefaultAction: Allow, TrustDomain: DefaultTrustDomain},
			MTLS: MTLS{
				WorkloadCertTTL:  Duration(DefaultWorkloadCertTTL.String()),
				AllowedClockSkew: Duration(DefaultAllowedClockSkew.String()),
			},
		},
	}
}

// TrustDomain is the app trust domain (accessControl.trustDomain), default "public".
func (c *Configuration) TrustDomain() string {
	if td := strings.TrimSpace(c.Spec.AccessControl.TrustDomain); td != "" {
		return td
	}
	return DefaultTrustDomain
}

// WorkloadCertTTL is mtls.workloadCertTTL, or 24h if unset or invalid
// (Validate reports invalid values).
func (c *Configuration) WorkloadCertTTL() time.Duration {
	if d, err := c.Spec.MTLS.WorkloadCertTTL.Parse(); err == nil && d > 0 {
		return d
	}
	return DefaultWorkloadCertTTL
}

// AllowedClockSkew is mtls.allowedClockSkew, or 15m if unset or invalid.
func (c *Configuration) AllowedClockSkew() time.Duration {
	if c.Spec.MTLS.AllowedClockSkew == "" {
		return DefaultAllowedClockSkew
	}
	if d, err := c.Spec.MTLS.AllowedClockSkew.Parse(); err == nil && d >= 0 {
		return d
	}
	return DefaultAllowedClockSkew
}

// FeatureEnabled reports whether a preview feature is on. Names match
// exactly, as in Dapr. The last entry for a name wins; HotReload and
// WorkflowsRemoteActivityReminder are on unless disabled.
func (c *Configuration) FeatureEnabled(name string) bool {
	enabled := defaultFeature(name)
	for _, f := range c.Spec.Features {
		if f.Name == name {
			enabled = f.Enabled
		}
	}
	return enabled
}

// EnabledFeatures are the names of the preview features that are on
// (FeatureEnabled), sorted: what the metadata API reports.
func (c *Configuration) EnabledFeatures() []string {
	seen := map[string]bool{}
	var out []string
	for _, name := range append([]string{"HotReload", "WorkflowsRemoteActivityReminder"}, featureNames(c.Spec.Features)...) {
		if name == "" || seen[name] {
			continue
		}
		seen[name] = true
		if c.FeatureEnabled(name) {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}

func featureNames(fs []Feature) []string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return names
}

// SamplingRate is tracing.samplingRate as a number in [0, 1]; 0 (off) when
// unset or invalid.
func (c *Configuration) SamplingRate() float64 {
	f, err := parseSamplingRate(c.Spec.Tracing.SamplingRate)
	if err != nil {
		return 0
	}
	return f
}

func parseSamplingRate(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || f != f || f < 0 || f > 1 { // f != f: NaN
		return 0, strconv.ErrRange
	}
	return f, nil
}

// MetricsEnabled reports whether metrics are on (default true).
func (c *Configuration) MetricsEnabled() bool {
	return c.Spec.Metrics.Enabled == nil || *c.Spec.Metrics.Enabled
}

// ACLDefaultAction is accessControl.defaultAction lower-cased, "allow" when unset.
func (c *Configuration) ACLDefaultAction() string {
	if a := strings.ToLower(strings.TrimSpace(c.Spec.AccessControl.DefaultAction)); a != "" {
		return a
	}
	return Allow
}

// SecretsScope returns the scope for a secret store, if one is configured.
func (c *Configuration) SecretsScope(store string) (SecretsScope, bool) {
	for _, s := range c.Spec.Secrets.Scopes {
		if s.StoreName == store {
			return s, true
		}
	}
	return SecretsScope{}, false
}

// SecretAllowed reports whether key may be read from store, following
// Dapr's rules: without a scope everything is allowed; a non-empty
// allowedSecrets list is exhaustive; otherwise deniedSecrets, then
// defaultAccess decide.
func (c *Configuration) SecretAllowed(store, key string) bool {
	s, ok := c.SecretsScope(store)
	if !ok {
		return true
	}
	if len(s.AllowedSecrets) > 0 {
		return slices.Contains(s.AllowedSecrets, key)
	}
	if slices.Contains(s.DeniedSecrets, key) {
		return false
	}
	return !strings.EqualFold(s.DefaultAccess, Deny)
}

// mergeLegacyMetrics folds spec.metric into spec.metrics where metrics
// leaves a field unset (Dapr: .metrics wins when set).
func (s *Spec) mergeLegacyMetrics() {
	m, l := &s.Metrics, s.Metric
	if m.Enabled == nil {
		m.Enabled = l.Enabled
	}
	if m.RecordErrorCodes == nil {
		m.RecordErrorCodes = l.RecordErrorCodes
	}
	if m.HTTP.IncreasedCardinality == nil && m.HTTP.PathMatching == nil && m.HTTP.ExcludeVerbs == nil {
		m.HTTP = l.HTTP
	}
	if m.LatencyDistributionBuckets == nil {
		m.LatencyDistributionBuckets = l.LatencyDistributionBuckets
	}
	if m.Rules == nil {
		m.Rules = l.Rules
	}
}
