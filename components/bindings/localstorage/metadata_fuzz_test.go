package localstorage

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/internal/metadatafuzz"
)

// FuzzParseRoot: see metadatafuzz.Run; a parsed root is absolute and not
// a system location.
func FuzzParseRoot(f *testing.F) {
	var seeds []map[string]string
	for _, c := range rootCases {
		seeds = append(seeds, map[string]string{"rootPath": c.root})
	}
	metadatafuzz.Run(f, "fuzzed", []string{"rootPath"}, seeds, func(p map[string]string) (string, error) {
		return parseRoot(components.Metadata{Name: "fuzzed", Properties: p})
	}, func(root string) error {
		if !filepath.IsAbs(root) || root == "/" || root == "/etc" {
			return errors.New("root not absolute or a system location")
		}
		return nil
	})
}
