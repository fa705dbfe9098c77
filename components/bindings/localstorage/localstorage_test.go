package localstorage

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
	"github.com/tandemrun/tandem/components/bindings/bindingstest"
)

func open(t *testing.T, root string) *Binding {
	t.Helper()
	b := New()
	if err := b.Init(context.Background(), components.Metadata{Name: "ls", Properties: map[string]string{"rootPath": root}}); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestContract(t *testing.T) {
	root := t.TempDir()
	bindingstest.Run(t, bindingstest.Config{
		New: func() bindings.Binding { return New() },
		Metadata: func(*testing.T) components.Metadata {
			return components.Metadata{Name: "ls", Properties: map[string]string{"rootPath": root}}
		},
	})
}

func invoke(t *testing.T, b *Binding, op, file, data string) (*bindings.InvokeResponse, error) {
	t.Helper()
	md := map[string]string{}
	if file != "" {
		md["fileName"] = file
	}
	return b.Invoke(context.Background(), &bindings.InvokeRequest{Operation: op, Data: []byte(data), Metadata: md})
}

func TestOperations(t *testing.T) {
	root := t.TempDir()
	b := open(t, filepath.Join(root, "made"))
	// A JSON string is stored unquoted, as daprd's HTTP API sends data.
	resp, err := invoke(t, b, "create", "a/b.txt", `"data1"`)
	if err != nil {
		t.Fatal(err)
	}
	if string(resp.Data) != `{"fileName":"a/b.txt"}` {
		t.Errorf("create answered %s", resp.Data)
	}
	if got, _ := os.ReadFile(filepath.Join(root, "made", "a", "b.txt")); string(got) != "data1" {
		t.Errorf("file holds %q", got)
	}
	if resp, err = invoke(t, b, "get", "a/b.txt", ""); err != nil || string(resp.Data) != "data1" {
		t.Errorf("get = %v, %v", resp, err)
	}
	// Base64 is stored decoded (Dapr's rule).
	if _, err := invoke(t, b, "create", "b64", "aGVsbG8="); err != nil {
		t.Fatal(err)
	}
	if resp, _ = invoke(t, b, "get", "b64", ""); string(resp.Data) != "hello" {
		t.Errorf("base64 stored as %q", resp.Data)
	}
	// No file name: a UUID.
	resp, err = invoke(t, b, "create", "", "x")
	if err != nil {
		t.Fatal(err)
	}
	var created struct{ FileName string }
	_ = json.Unmarshal(resp.Data, &created)
	if len(created.FileName) != 36 {
		t.Errorf("generated name %q", created.FileName)
	}
	resp, err = invoke(t, b, "list", "", "")
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	_ = json.Unmarshal(resp.Data, &files)
	if len(files) != 3 {
		t.Errorf("list = %v", files)
	}
	if _, err := invoke(t, b, "delete", "a/b.txt", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, b, "get", "a/b.txt", ""); err == nil || !strings.Contains(err.Error(), "file not found") {
		t.Errorf("get after delete: %v", err)
	}
}

func TestStaysInRoot(t *testing.T) {
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	b := open(t, root)
	if _, err := invoke(t, b, "create", "../../escape", "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "escape")); err != nil {
		t.Errorf("../../escape was not kept inside the root: %v", err)
	}
	if err := os.Symlink(dir, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := invoke(t, b, "create", "link/out", "x"); err == nil {
		t.Error("a symbolic link out of the root was followed")
	}
}

var rootCases = []struct {
	root    string
	wantErr bool
}{
	{"/tmp/x", false},
	{"relative/dir", false},
	{"", true},
	{"/", true},
	{"/etc", true},
	{"/proc/self", true},
}

func TestParseRoot(t *testing.T) {
	for _, c := range rootCases {
		_, err := parseRoot(components.Metadata{Name: "ls", Properties: map[string]string{"rootPath": c.root}})
		if (err != nil) != c.wantErr {
			t.Errorf("rootPath %q: err = %v, want error %v", c.root, err, c.wantErr)
		}
	}
}
