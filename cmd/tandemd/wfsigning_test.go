package main

import (
	"strings"
	"testing"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
)

// TestWorkflowSigner: history signing is off unless the Configuration
// enables it, and then needs mTLS, as in daprd.
func TestWorkflowSigner(t *testing.T) {
	on := config.Default()
	on.Spec.Features = append(on.Spec.Features, config.Feature{Name: featureWorkflowHistorySigning, Enabled: true})
	if s, err := workflowSigner(config.Default(), identity.NewSource()); s != nil || err != nil {
		t.Errorf("feature off: signer %v, error %v; want neither", s, err)
	}
	if _, err := workflowSigner(on, nil); err == nil || !strings.Contains(err.Error(), "mTLS is not configured") {
		t.Errorf("feature on without mTLS: %v", err)
	}
	if s, err := workflowSigner(on, identity.NewSource()); s == nil || err != nil {
		t.Errorf("feature on with mTLS: signer %v, error %v", s, err)
	}
}
