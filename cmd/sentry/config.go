package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/sentry/ca"
)

// mtlsSettings are the parts of the Configuration sentry honours.
type mtlsSettings struct {
	Source           string // file read, "" if defaults
	WorkloadCertTTL  time.Duration
	AllowedClockSkew time.Duration // negative: no back-dating
	TokenValidators  []string      // names configured (unsupported; reported)
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
	for _, v := range m.TokenValidators {
		s.TokenValidators = append(s.TokenValidators, v.Name)
	}
	return s.override(o), nil
}

func (s mtlsSettings) override(o *Options) mtlsSettings {
	if o.WorkloadCertTTL > 0 {
		s.WorkloadCertTTL = o.WorkloadCertTTL
	}
	return s
}
