package resiliency

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// LoadDirs parses the Resiliency documents of every .yaml and .yml file
// directly in dirs (not subdirectories), dirs in order and files by name,
// as daprd reads --resources-path. A missing directory is skipped.
func LoadDirs(dirs ...string) ([]*Resiliency, []Warning, error) {
	var (
		docs     []*Resiliency
		warnings []Warning
	)
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("read resources directory: %w", err)
		}
		var names []string
		for _, e := range entries {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				names = append(names, e.Name())
			}
		}
		slices.Sort(names)
		for _, n := range names {
			path := filepath.Join(dir, n)
			data, err := os.ReadFile(path)
			if err != nil {
				return nil, nil, fmt.Errorf("read resiliency file: %w", err)
			}
			d, w, err := Parse(path, data)
			if err != nil {
				return nil, nil, err
			}
			docs = append(docs, d...)
			warnings = append(warnings, w...)
		}
	}
	return docs, warnings, nil
}
