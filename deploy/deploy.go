// Package deploy holds Tandem's Kubernetes install: the Helm chart in helm/tandem (Dapr's CRDs, sentry, the
// operator and the injector) and, in manifests/, the same rendered as plain YAML for kubectl. This file only embeds
// the chart so that the tandem CLI carries it; the chart is loaded and rendered in cmd/tandem/internal/kube.
package deploy

import (
	"embed"
	"io/fs"
)

//go:embed all:helm/tandem
var chartFiles embed.FS

// Chart returns the chart's files, rooted at the chart's folder (Chart.yaml at the top).
func Chart() fs.FS {
	sub, err := fs.Sub(chartFiles, "helm/tandem")
	if err != nil {
		panic(err) // the embed pattern above names this folder: it cannot be missing
	}
	return sub
}
