package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse checks that no input makes Parse, Validate or the accessors
// panic. Seeds: every table case plus the testdata files and some
// adversarial YAML.
func FuzzParse(f *testing.F) {
	for _, tc := range parseCases {
		f.Add([]byte(tc.yaml))
	}
	for _, tc := range validateCases {
		f.Add([]byte(tc.yaml))
	}
	files, _ := filepath.Glob(filepath.Join("testdata", "*.yaml"))
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	for _, s := range []string{
		"a: &a [*a]\n",                                   // self-referencing alias
		"spec: &s {tracing: *s}\n",                       // alias cycle into a struct
		"kind: Configuration\nspec: {<<: [1, 2]}\n",      // merge key with scalars
		"kind: Configuration\nspec: !!binary aGVsbG8=\n", // odd tag
		"kind: [Configuration]\n",
		"kind: Configuration\nspec:\n  tracing:\n    otel:\n      headers: [[a]]\n",
		"kind: Configuration\nspec: {nameResolution: {configuration: &x [*x]}}\n",
		"\t\x00",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse(data, "fuzz.yaml")
		if err != nil {
			return
		}
		_ = c.Validate()
		_ = c.TrustDomain()
		_ = c.WorkloadCertTTL()
		_ = c.AllowedClockSkew()
		_ = c.SamplingRate()
		_ = c.FeatureEnabled("HotReload")
		_ = c.SecretAllowed("s", "k")
		for _, w := range c.Warnings {
			_ = w.String()
		}
	})
}
