package deploy

import (
	"io/fs"
	"testing"
)

// TestChartEmbedded: the binary carries the whole chart, CRDs and templates included, rooted at Chart.yaml.
func TestChartEmbedded(t *testing.T) {
	for _, f := range []string{"Chart.yaml", "values.yaml", "crds/components.yaml", "crds/subscriptions.yaml",
		"templates/sentry.yaml", "templates/operator.yaml", "templates/injector.yaml", "templates/_helpers.tpl"} {
		if _, err := fs.Stat(Chart(), f); err != nil {
			t.Errorf("the embedded chart lacks %s: %v", f, err)
		}
	}
}
