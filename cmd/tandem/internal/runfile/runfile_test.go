package runfile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// sampleFile is a run file with two apps; TestParse expects it in a folder
// holding an "orders" folder.
const sampleFile = `version: 1
common:
  resourcesPath: ./resources
  env:
    DEBUG: true
    PORT: 8080
apps:
  - appID: orders
    appDirPath: ./orders
    appPort: 3000
    appProtocol: grpc
    command: ["go", "run", "."]
    env:
      PORT: "9090"
    daprHTTPPort: 3500
    enableApiLogging: true
  - appID: checkout
    configFilePath: cfg.yaml
    resourcesPaths: [a, b]
    command: ["./checkout"]
`

// parseErrorCases are run files Parse refuses, with part of the error.
var parseErrorCases = []struct{ name, yaml, want string }{
	{"version", "version: 2\napps: [{appID: a}]", "version 2"},
	{"no apps", "version: 1\n", "no apps"},
	{"no id", "version: 1\napps: [{command: [x]}]", "appID is required"},
	{"dup", "version: 1\napps: [{appID: a}, {appID: a}]", "twice"},
	{"dir", "version: 1\napps: [{appID: a, appDirPath: nope}]", "not a folder"},
	{"yaml", "version: [", "multi-app"},
	{"env", "version: 1\napps: [{appID: a, env: {X: [1]}}]", "env values"},
}

func TestParse(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "apps.yaml")
	f, err := Parse(path, []byte(sampleFile))
	if err != nil {
		t.Fatal(err)
	}
	want := []App{
		{AppID: "orders", Dir: filepath.Join(dir, "orders"), AppPort: 3000, AppProtocol: "grpc", Command: []string{"go", "run", "."},
			Env: map[string]string{"DEBUG": "true", "PORT": "9090"}, ResourcesPaths: []string{filepath.Join(dir, "resources")}, HTTPPort: 3500},
		{AppID: "checkout", Dir: dir, Command: []string{"./checkout"}, Env: map[string]string{"DEBUG": "true", "PORT": "8080"},
			ResourcesPaths: []string{filepath.Join(dir, "a"), filepath.Join(dir, "b")}, ConfigFile: filepath.Join(dir, "cfg.yaml")},
	}
	if !reflect.DeepEqual(f.Apps, want) {
		t.Fatalf("apps\n got %+v\nwant %+v", f.Apps, want)
	}
	if len(f.Warnings) != 1 || !strings.Contains(f.Warnings[0], "enableApiLogging") {
		t.Fatalf("warnings %v", f.Warnings)
	}
	if _, err := f.Find("checkout"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Find("nope"); err == nil {
		t.Fatal("Find(nope): want error")
	}
}

func TestParseErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range parseErrorCases {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "f.yaml"), []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}

// FuzzParse checks what Parse promises of any input: an error names the
// file; a parsed file is version 1 with at least one app, app IDs present and
// unique, Find returning each app, every path absolute and clean, the app's
// folder an existing folder, common env applied to every app unless the app
// sets the key; and parsing is deterministic.
func FuzzParse(f *testing.F) {
	f.Add(sampleFile)
	f.Add("version: 1\ncommon: {command: [run], env: {A: 1}, configFilePath: /etc/c.yaml}\napps: [{appID: a, appDirPath: /}, {appID: b, resourcesPath: r}]")
	for _, c := range parseErrorCases {
		f.Add(c.yaml)
	}
	dir := f.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "orders"), 0o755); err != nil {
		f.Fatal(err)
	}
	path := filepath.Join(dir, "apps.yaml")
	f.Fuzz(func(t *testing.T, data string) {
		file, err := Parse(path, []byte(data))
		again, err2 := Parse(path, []byte(data))
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(file, again) {
			t.Fatalf("two parses differ: %v / %v", err, err2)
		}
		if err != nil {
			if file != nil || !strings.HasPrefix(err.Error(), path+": ") {
				t.Fatalf("error %q does not start with the file's path, or comes with a file", err)
			}
			return
		}
		if file.Version != 1 || len(file.Apps) == 0 || file.Path != path {
			t.Fatalf("version %d, %d apps, path %q", file.Version, len(file.Apps), file.Path)
		}
		var raw struct {
			Common struct {
				Env map[string]envVal `yaml:"env"`
			} `yaml:"common"`
			Apps []struct {
				Env map[string]envVal `yaml:"env"`
			} `yaml:"apps"`
		}
		if err := yaml.Unmarshal([]byte(data), &raw); err != nil || len(raw.Apps) != len(file.Apps) {
			t.Fatalf("the input does not decode again (%v) or has %d apps, not %d", err, len(raw.Apps), len(file.Apps))
		}
		clean := func(p string) bool { return filepath.IsAbs(p) && filepath.Clean(p) == p }
		for i, a := range file.Apps {
			if got, err := file.Find(a.AppID); a.AppID == "" || err != nil || !reflect.DeepEqual(got, a) {
				t.Fatalf("app %d: ID %q, Find: %+v, %v", i, a.AppID, got, err)
			}
			if st, err := os.Stat(a.Dir); !clean(a.Dir) || err != nil || !st.IsDir() {
				t.Fatalf("app %q: folder %q (%v)", a.AppID, a.Dir, err)
			}
			for _, p := range a.ResourcesPaths {
				if !clean(p) {
					t.Fatalf("app %q: resources path %q is not absolute and clean", a.AppID, p)
				}
			}
			if a.ConfigFile != "" && !clean(a.ConfigFile) {
				t.Fatalf("app %q: config file %q is not absolute and clean", a.AppID, a.ConfigFile)
			}
			for k, v := range raw.Common.Env {
				if _, own := raw.Apps[i].Env[k]; !own && a.Env[k] != string(v) {
					t.Fatalf("app %q: env %s = %q, want common's %q", a.AppID, k, a.Env[k], v)
				}
			}
			for k, v := range raw.Apps[i].Env {
				if a.Env[k] != string(v) {
					t.Fatalf("app %q: env %s = %q, want the app's %q", a.AppID, k, a.Env[k], v)
				}
			}
		}
	})
}
