package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Load reads one Configuration file, expanding $VAR and ${VAR} from the
// process environment first, as daprd does.
func Load(path string) (*Configuration, error) {
	return LoadFiles(os.Getenv, path)
}

// LoadFiles reads Configuration files in order and merges them, later files
// overriding earlier ones field by field (daprd accepts --config several
// times in self-hosted mode). If getenv is non-nil, $VAR and ${VAR} in the
// files are expanded with it (unset variables become empty, as in daprd).
// With no paths it returns Default().
func LoadFiles(getenv func(string) string, paths ...string) (*Configuration, error) {
	cfg := Default()
	if len(paths) == 0 {
		return cfg, nil
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("read configuration: %w; check the --config path", err)
		}
		if getenv != nil {
			data = []byte(os.Expand(string(data), getenv))
		}
		if err := cfg.decode(data, p); err != nil {
			return nil, err
		}
	}
	cfg.Source = strings.Join(paths, ", ")
	cfg.finish()
	return cfg, nil
}

// Parse decodes a Configuration from data without environment expansion.
// source names the data in messages (usually the file path). If data holds
// several YAML documents, the first with kind: Configuration is used. Unknown
// fields become Warnings, never errors; Parse fails only on broken YAML,
// values of the wrong YAML type, or a file without a Configuration document.
// Call Validate for semantic checks.
func Parse(data []byte, source string) (*Configuration, error) {
	cfg := Default()
	if err := cfg.decode(data, source); err != nil {
		return nil, err
	}
	cfg.Source = source
	cfg.finish()
	return cfg, nil
}

// decode merges one file into c.
func (c *Configuration) decode(data []byte, source string) error {
	doc, warns, err := pickDocument(data, source)
	if err != nil {
		return err
	}
	c.Warnings = append(c.Warnings, warns...)
	if doc == nil {
		return nil
	}
	if err := doc.Decode(c); err != nil {
		return fmt.Errorf("%s: %w; fix the value's type in the Configuration file", source, err)
	}
	w := walker{source: source}
	w.walk(doc, reflect.TypeFor[Configuration](), "", 0)
	c.Warnings = append(c.Warnings, w.warnings...)
	if c.APIVersion != "" && c.APIVersion != APIVersion {
		c.Warnings = append(c.Warnings, Warning{Source: source, Path: "apiVersion",
			Message: fmt.Sprintf("%q is not %s; reading it as %s anyway", c.APIVersion, APIVersion, APIVersion)})
	}
	return nil
}

// finish runs once after all files are merged.
func (c *Configuration) finish() {
	c.Spec.mergeLegacyMetrics()
	c.Warnings = append(c.Warnings, c.lint()...)
}

// pickDocument returns the Configuration document of a possibly
// multi-document file; nil (and no error) for an empty file.
func pickDocument(data []byte, source string) (*yaml.Node, []Warning, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var (
		chosen   *yaml.Node
		untyped  []*yaml.Node
		kinds    []string
		warnings []Warning
	)
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("%s: invalid YAML: %w; fix the syntax", source, err)
		}
		root := &doc
		if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
			root = root.Content[0]
		}
		if root.Kind == 0 || (root.Kind == yaml.ScalarNode && root.Tag == "!!null") {
			continue // empty document, e.g. a trailing "---"
		}
		if root.Kind != yaml.MappingNode {
			return nil, nil, fmt.Errorf("%s:%d: a Configuration document must be a YAML mapping (apiVersion, kind, metadata, spec), not a %s", source, root.Line, kindName(root.Kind))
		}
		kind := scalarField(root, "kind")
		switch {
		case kind == Kind && chosen == nil:
			chosen = root
		case kind == Kind:
			warnings = append(warnings, Warning{Source: source, Line: root.Line,
				Message: "another kind: Configuration document; only the first one in a file is used"})
		case kind == "":
			untyped = append(untyped, root)
		default:
			kinds = append(kinds, kind)
		}
	}
	if chosen != nil {
		return chosen, warnings, nil
	}
	switch {
	case len(untyped) == 1 && len(kinds) == 0:
		// daprd does not look at kind in self-hosted mode; accept it.
		warnings = append(warnings, Warning{Source: source, Line: untyped[0].Line,
			Message: "document has no kind; reading it as kind: Configuration"})
		return untyped[0], warnings, nil
	case len(untyped) == 0 && len(kinds) == 0:
		warnings = append(warnings, Warning{Source: source, Message: "file is empty; using the default configuration"})
		return nil, warnings, nil
	}
	return nil, nil, fmt.Errorf("%s: no document with kind: Configuration (found kinds: %s); pass a Configuration file to --config and put components in --resources-path",
		source, strings.Join(append(kinds, repeat("<none>", len(untyped))...), ", "))
}

func repeat(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

func scalarField(m *yaml.Node, key string) string {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key && m.Content[i+1].Kind == yaml.ScalarNode {
			return m.Content[i+1].Value
		}
	}
	return ""
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	default:
		return "document"
	}
}
