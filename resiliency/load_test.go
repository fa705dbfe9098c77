package resiliency

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadDirs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("b.yaml", "kind: Resiliency\nmetadata: {name: b}\n")
	write("a.yml", "kind: Component\n---\nkind: Resiliency\nmetadata: {name: a}\nspec: {oops: 1}\n")
	write("c.txt", "kind: Resiliency\nmetadata: {name: c}\n")
	docs, warns, err := LoadDirs(dir, filepath.Join(dir, "missing"))
	if err != nil {
		t.Fatal(err)
	}
	if len(docs) != 2 || docs[0].Metadata.Name != "a" || docs[1].Metadata.Name != "b" {
		t.Errorf("docs = %v", docs)
	}
	if len(warns) != 1 || warns[0].Path != "spec.oops" || !strings.HasSuffix(warns[0].File, "a.yml") {
		t.Errorf("warnings = %v", warns)
	}
	write("d.yaml", "kind: Resiliency\nspec: [")
	if _, _, err := LoadDirs(dir); err == nil || !strings.Contains(err.Error(), "d.yaml") {
		t.Errorf("broken file: err = %v", err)
	}
}
