package main

import (
	"errors"

	"github.com/tandemrun/tandem/config"
	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/workflow/signing"
)

// featureWorkflowHistorySigning is Dapr's preview feature that signs
// workflow histories with the sidecar's SVID; off unless enabled.
const featureWorkflowHistorySigning = "WorkflowHistorySigning"

// workflowSigner is the workflow engine's history signer: nil unless the
// Configuration enables WorkflowHistorySigning, which needs mTLS (peers,
// the sidecar's SVID) as in daprd.
func workflowSigner(cfg *config.Configuration, peers *identity.Source) (*signing.Signer, error) {
	if !cfg.FeatureEnabled(featureWorkflowHistorySigning) {
		return nil, nil
	}
	if peers == nil {
		return nil, errors.New("WorkflowHistorySigning feature flag is enabled but mTLS is not configured; workflow history signing requires mTLS to be active")
	}
	return signing.New(peers), nil
}
