package runfile

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "orders"), 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "apps.yaml")
	f, err := Parse(path, []byte(`version: 1
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
`))
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
	tests := []struct{ name, yaml, want string }{
		{"version", "version: 2\napps: [{appID: a}]", "version 2"},
		{"no apps", "version: 1\n", "no apps"},
		{"no id", "version: 1\napps: [{command: [x]}]", "appID is required"},
		{"dup", "version: 1\napps: [{appID: a}, {appID: a}]", "twice"},
		{"dir", "version: 1\napps: [{appID: a, appDirPath: nope}]", "not a folder"},
		{"yaml", "version: [", "multi-app"},
		{"env", "version: 1\napps: [{appID: a, env: {X: [1]}}]", "env values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse(filepath.Join(dir, "f.yaml"), []byte(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
