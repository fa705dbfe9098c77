package config

import (
	"strings"
	"testing"
)

func TestSpecJSON(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       []string
		never      []string
	}{
		{"metrics", "spec:\n  metrics:\n    http:\n      increasedCardinality: false\n", []string{`"increasedCardinality":false`}, nil},
		{"exporter headers redacted", "spec:\n  tracing:\n    otel:\n      endpointAddress: x:4317\n      headers:\n      - api-key=s3cret\n",
			[]string{`"endpointAddress":"x:4317"`, `api-key`, `REDACTED`}, []string{"s3cret"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			if err := c.decode([]byte("apiVersion: dapr.io/v1alpha1\nkind: Configuration\nmetadata:\n  name: c\n"+tc.yaml), "test"); err != nil {
				t.Fatal(err)
			}
			got, err := c.SpecJSON()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%s lacks %s", got, w)
				}
			}
			for _, n := range tc.never {
				if strings.Contains(got, n) {
					t.Errorf("%s contains %s", got, n)
				}
			}
		})
	}
}
