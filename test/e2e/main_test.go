package e2e

import (
	"flag"
	"fmt"
	"os"
	"testing"

	"github.com/tandemrun/tandem/test/e2e/framework"
)

var bins *framework.Binaries

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		fmt.Println("e2e: skipped in -short mode")
		os.Exit(0)
	}
	var err error
	bins, err = framework.Build()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot build the binaries:", err)
		os.Exit(1)
	}
	code := m.Run()
	framework.Cleanup()
	os.Exit(code)
}
