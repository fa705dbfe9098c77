// Package tail reads the last lines of log files, for error messages that
// show what a process printed before it failed.
package tail

import (
	"io"
	"os"
	"strings"
)

// maxRead bounds how much of a file's end is read.
const maxRead = 64 << 10

// File returns the last n lines of path, indented, or a note saying the file
// could not be read.
func File(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	off := max(st.Size()-maxRead, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return "    (no log: " + err.Error() + ")"
	}
	lines := Lines(string(b), n)
	if len(lines) == 0 {
		return "    (the log is empty)"
	}
	return "    " + strings.Join(lines, "\n    ")
}

// Lines returns the last n non-empty-trailing lines of s.
func Lines(s string, n int) []string {
	s = strings.TrimRight(s, "\n")
	if s == "" {
		return nil
	}
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines
}
