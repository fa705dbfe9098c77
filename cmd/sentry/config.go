package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/sentry/ca"
	"github.com/tandemrun/tandem/sentry/validator"
)

// mtlsSettings are the parts of the Configuration sentry honours.
type mtlsSettings struct {
	Source           string // file read, "" if defaults
	WorkloadCertTTL  time.Duration
	AllowedClockSkew time.Duration // negative: no back-dating
	TokenValidators  []config.TokenValidator
}

// loadMTLS reads spec.mtls from the --config file. Dapr's default config
// name "daprsystem" that is not a file means defaults; an explicitly given
// file must exist.
func loadMTLS(o *Options) (mtlsSettings, error) {
	s := mtlsSettings{WorkloadCertTTL: ca.DefaultWorkloadCertTTL, AllowedClockSkew: ca.DefaultAllowedClockSkew}
	path := o.ConfigPath
	if path == "" {
		return s.override(o), nil
	}
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && (!o.ConfigExplicit || path == defaultConfigName) {
		return s.override(o), nil
	}
	cfg, err := config.Load(path)
	if err != nil {
		return s, err
	}
	s.Source = path
	m := cfg.Spec.MTLS
	if m.WorkloadCertTTL != "" {
		d, err := m.WorkloadCertTTL.Parse()
		if err != nil {
			return s, fmt.Errorf("configuration %s: spec.mtls.workloadCertTTL: %w", path, err)
		}
		if d <= 0 {
			return s, fmt.Errorf("configuration %s: spec.mtls.workloadCertTTL must be positive", path)
		}
		s.WorkloadCertTTL = d
	}
	if m.AllowedClockSkew != "" {
		d, err := m.AllowedClockSkew.Parse()
		if err != nil {
			return s, fmt.Errorf("configuration %s: spec.mtls.allowedClockSkew: %w", path, err)
		}
		if d < 0 {
			return s, fmt.Errorf("configuration %s: spec.mtls.allowedClockSkew must not be negative", path)
		}
		s.AllowedClockSkew = d
		if d == 0 {
			s.AllowedClockSkew = -1
		}
	}
	s.TokenValidators = m.TokenValidators
	return s.override(o), nil
}

func (s mtlsSettings) override(o *Options) mtlsSettings {
	if o.WorkloadCertTTL > 0 {
		s.WorkloadCertTTL = o.WorkloadCertTTL
	}
	return s
}

// jwksOptions reads the options of a "jwks" token validator (strings, the
// durations as Go durations), as Dapr's sentry reads them.
func jwksOptions(v config.TokenValidator, audience string) (validator.JWKSOptions, error) {
	o := validator.JWKSOptions{Audience: audience}
	str := func(key string) (string, error) {
		x, ok := v.Options[key]
		if !ok || x == nil {
			return "", nil
		}
		s, ok := x.(string)
		if !ok {
			return "", fmt.Errorf("spec.mtls.tokenValidators[jwks].options.%s must be a string, not %v", key, x)
		}
		return s, nil
	}
	dur := func(key string) (time.Duration, error) {
		s, err := str(key)
		if err != nil || s == "" {
			return 0, err
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, fmt.Errorf("spec.mtls.tokenValidators[jwks].options.%s: %w", key, err)
		}
		return d, nil
	}
	var err error
	if o.Source, err = str("source"); err != nil {
		return o, err
	}
	if o.CACertificate, err = str("caCertificate"); err != nil {
		return o, err
	}
	if o.RequestTimeout, err = dur("requestTimeout"); err != nil {
		return o, err
	}
	o.MinRefreshInterval, err = dur("minRefreshInterval")
	return o, err
}
