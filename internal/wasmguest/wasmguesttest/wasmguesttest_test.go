package wasmguesttest

import (
	"bytes"
	"os"
	"testing"
)

func TestBuildOnceAsWasm(t *testing.T) {
	const pkg = "github.com/tandemrun/tandem/components/bindings/wasm/testdata/program"
	p := Build(t, pkg, false)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("\x00asm")) {
		t.Fatalf("%s is not a WebAssembly module", p)
	}
	if again := Build(t, pkg, false); again != p {
		t.Fatalf("second Build gave %s, want the first build's %s", again, p)
	}
	if reactor := Build(t, pkg, true); reactor == p {
		t.Fatal("the reactor build shares the command build's file")
	}
}
