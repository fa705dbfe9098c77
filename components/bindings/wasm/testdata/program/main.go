// The test program of bindings.wasm: it echoes its arguments and stdin, and
// behaves as its first argument says: "exit" exits with code 3 after
// writing to stderr, "loop" never ends, "clock" prints the time and a
// random number (fixed under strictSandbox).
package main

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

func main() {
	in, _ := io.ReadAll(os.Stdin)
	args := os.Args[1:]
	if len(args) > 0 {
		switch args[0] {
		case "exit":
			fmt.Fprintln(os.Stderr, "asked to fail")
			os.Exit(3)
		case "loop":
			for {
			}
		case "clock":
			var b [8]byte
			_, _ = rand.Read(b[:])
			fmt.Printf("%d %d", time.Now().UnixNano(), binary.LittleEndian.Uint64(b[:]))
			return
		}
	}
	fmt.Printf("%s|%s|%s", os.Args[0], strings.Join(args, ","), in)
}
