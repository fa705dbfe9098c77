package deptest

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// top is the top-level folder of a package path.
func top(pkg string) string {
	t, _, _ := strings.Cut(pkg, "/")
	return t
}

// checkCodeMap compares the README's code map (folders in the order it
// lists them) with the repository: every top-level folder holding Go
// packages, and every folder of folders, is listed; every listed folder is
// in folders; and the order is dependency order: a folder imports (tests
// included) only folders listed before it.
func checkCodeMap(listed []string, g graph, folders map[string]bool) []string {
	var problems []string
	at := map[string]int{}
	for i, d := range listed {
		if _, dup := at[d]; dup {
			problems = append(problems, fmt.Sprintf("%s/ is listed twice", d))
			continue
		}
		at[d] = i
		if !folders[d] {
			problems = append(problems, fmt.Sprintf("%s/ is listed but is not a folder of the repository", d))
		}
	}
	missing := map[string]bool{}
	for d := range folders {
		if _, ok := at[d]; !ok {
			missing[d] = true
		}
	}
	bad := map[[2]string]string{}
	for _, from := range slices.Sorted(maps.Keys(g.imports)) {
		if _, ok := at[top(from)]; !ok {
			missing[top(from)] = true
			continue
		}
		for _, to := range slices.Concat(g.imports[from], g.tests[from]) {
			a, b := top(from), top(to)
			if i, ok := at[b]; ok && a != b && i > at[a] {
				if _, seen := bad[[2]string{a, b}]; !seen {
					bad[[2]string{a, b}] = from + " imports " + to
				}
			}
		}
	}
	for _, d := range slices.Sorted(maps.Keys(missing)) {
		problems = append(problems, fmt.Sprintf("%s/ is not in the code map", d))
	}
	for _, k := range slices.SortedFunc(maps.Keys(bad), func(x, y [2]string) int {
		return strings.Compare(x[0]+" "+x[1], y[0]+" "+y[1])
	}) {
		problems = append(problems, fmt.Sprintf("%s/ is listed after %s/, but %s", k[1], k[0], bad[k]))
	}
	return problems
}

// readCodeMap returns the folders of the "## Code map" section of a README,
// in order: its lines of the form "- `folder/` ...".
func readCodeMap(r io.Reader) ([]string, error) {
	var dirs []string
	in := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line[3:]) == "Code map"
			continue
		}
		if !in {
			continue
		}
		rest, ok := strings.CutPrefix(line, "- `")
		if !ok {
			continue
		}
		dir, _, ok := strings.Cut(rest, "/`")
		if !ok || dir == "" || strings.Contains(dir, "/") {
			return nil, fmt.Errorf("code map line %q: want \"- `folder/` what it holds\"", line)
		}
		dirs = append(dirs, dir)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(dirs) == 0 {
		return nil, errors.New(`no "## Code map" section with "- ` + "`folder/`" + `" lines`)
	}
	return dirs, nil
}

// TestCodeMap fails when README.md's code map misses a folder of Go code,
// lists one that does not exist, or is not in dependency order.
func TestCodeMap(t *testing.T) {
	root, g := load(t)
	f, err := os.Open(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	listed, err := readCodeMap(f)
	if err != nil {
		t.Fatalf("README.md: %v", err)
	}
	for _, p := range checkCodeMap(listed, g, repoFolders(t, root)) {
		t.Errorf("README.md code map: %s", p)
	}
}

// repoFolders returns the repository's top-level folders: those git tracks
// files in, or (outside a git checkout) those on disk that are neither
// hidden nor ignored by a "/folder/" line of .gitignore (build output).
func repoFolders(t *testing.T, root string) map[string]bool {
	t.Helper()
	folders := map[string]bool{}
	ls := exec.Command("git", "ls-files", "-z")
	ls.Dir = root
	if out, err := ls.Output(); err == nil {
		for _, f := range strings.Split(string(out), "\x00") {
			if d, _, ok := strings.Cut(f, "/"); ok && !strings.HasPrefix(d, ".") {
				folders[d] = true
			}
		}
		return folders
	}
	t.Log("not a git checkout: taking the top-level folders from the disk")
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	ignore, _ := os.ReadFile(filepath.Join(root, ".gitignore"))
	for _, e := range entries {
		ignored := slices.Contains(strings.Split(string(ignore), "\n"), "/"+e.Name()+"/")
		if e.IsDir() && !ignored && !strings.HasPrefix(e.Name(), ".") {
			folders[e.Name()] = true
		}
	}
	return folders
}

func TestCheckCodeMap(t *testing.T) {
	g := graph{
		imports: map[string][]string{
			"config": nil, "identity": nil,
			"invoke": {"identity"}, "proxy": {"invoke", "config"},
			"cmd/tandemd": {"proxy"},
		},
		tests: map[string][]string{"invoke": {"config"}},
	}
	all := map[string]bool{"config": true, "identity": true, "invoke": true, "proxy": true, "cmd": true, "docs": true}
	for _, c := range []struct {
		name    string
		listed  []string
		folders map[string]bool
		want    int
	}{
		{"in order", []string{"config", "identity", "invoke", "proxy", "cmd", "docs"}, all, 0},
		{"missing folder of code", []string{"config", "identity", "invoke", "proxy", "docs"}, all, 1},
		{"missing folder without code", []string{"config", "identity", "invoke", "proxy", "cmd"}, all, 1},
		{"out of order", []string{"config", "invoke", "identity", "proxy", "cmd", "docs"}, all, 1},
		{"test import out of order", []string{"identity", "invoke", "config", "proxy", "cmd", "docs"}, all, 1},
		{"listed twice", []string{"config", "identity", "invoke", "proxy", "cmd", "docs", "config"}, all, 1},
		{"listed but absent", []string{"config", "identity", "invoke", "proxy", "cmd", "docs", "gone"}, all, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := checkCodeMap(c.listed, g, c.folders)
			if len(got) != c.want {
				t.Errorf("problems %q, want %d", got, c.want)
			}
		})
	}
}

func TestReadCodeMap(t *testing.T) {
	readme := "# T\n\n## Code map\n\nIntro.\n\n- `config/` reads files\n- `proxy/` the sidecar\n\n## Next\n\n- `not/` this\n"
	got, err := readCodeMap(strings.NewReader(readme))
	if err != nil || !slices.Equal(got, []string{"config", "proxy"}) {
		t.Fatalf("readCodeMap = %q, %v; want [config proxy]", got, err)
	}
	if _, err := readCodeMap(strings.NewReader("# T\n")); err == nil {
		t.Error("a README without a code map was accepted")
	}
	if _, err := readCodeMap(strings.NewReader("## Code map\n- `a/b/` x\n")); err == nil {
		t.Error("a nested folder in the code map was accepted")
	}
}
