package config

import (
	"encoding/json"
	"fmt"

	"go.yaml.in/yaml/v3"
)

// SpecJSON is the spec in effect as JSON with Dapr's field names, for the
// start-up log (daprd logs its configuration too). Exporter header values
// (API keys) are replaced by "REDACTED".
func (c *Configuration) SpecJSON() (string, error) {
	spec := c.Spec
	if hs := spec.Tracing.Otel.Headers; len(hs) > 0 {
		spec.Tracing.Otel.Headers = make(Headers, len(hs))
		for i, h := range hs {
			spec.Tracing.Otel.Headers[i] = Header{Name: h.Name, Value: "REDACTED"}
		}
	}
	y, err := yaml.Marshal(spec)
	if err != nil {
		return "", fmt.Errorf("encode configuration: %w", err)
	}
	var tree any
	if err := yaml.Unmarshal(y, &tree); err != nil {
		return "", fmt.Errorf("encode configuration: %w", err)
	}
	j, err := json.Marshal(tree)
	if err != nil {
		return "", fmt.Errorf("encode configuration: %w", err)
	}
	return string(j), nil
}
