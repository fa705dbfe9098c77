package runner

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// PortHolder names the process listening on TCP port (" by pid N (name)"),
// or "" if it cannot tell (another user's process, no /proc).
func PortHolder(port int) string {
	inodes := map[string]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		listeningInodes(f, port, inodes)
	}
	if len(inodes) == 0 {
		return ""
	}
	procs, _ := filepath.Glob("/proc/[0-9]*/fd/*")
	for _, fd := range procs {
		link, err := os.Readlink(fd)
		if err != nil || !strings.HasPrefix(link, "socket:[") {
			continue
		}
		if inodes[strings.TrimSuffix(strings.TrimPrefix(link, "socket:["), "]")] {
			pidDir := filepath.Dir(filepath.Dir(fd))
			comm, _ := os.ReadFile(filepath.Join(pidDir, "comm"))
			return fmt.Sprintf(" by pid %s (%s)", filepath.Base(pidDir), strings.TrimSpace(string(comm)))
		}
	}
	return ""
}

func listeningInodes(file string, port int, out map[string]bool) {
	f, err := os.Open(file)
	if err != nil {
		return
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		// sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
		if len(fs) < 10 || fs[3] != "0A" || !strings.HasSuffix(fs[1], want) {
			continue
		}
		if _, err := strconv.Atoi(fs[9]); err == nil {
			out[fs[9]] = true
		}
	}
}
