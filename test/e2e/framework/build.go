package framework

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Binaries are the built programs a test can start.
type Binaries struct {
	Dir     string
	Tandemd string
	Sentry  string
	// Placement is Tandem's placement service (cmd/placement).
	Placement string
	// Scheduler is Tandem's scheduler service (cmd/scheduler).
	Scheduler string
	Tandem    string
	Echo      string
	GRPCEcho  string
}

var (
	buildOnce sync.Once
	built     *Binaries
	buildErr  error
)

// RepoRoot returns the repository root (the folder holding go.mod).
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", "..", ".."))
}

// ReleaseFlags are the go build flags of a release build (scripts/build.sh
// and the README's install command use the same): grpcnotrace leaves out
// golang.org/x/net/trace, whose html/template keeps every exported method
// of every type alive in the linker (about 11 MiB of tandemd); -s -w drops
// the symbol table and DWARF (stack traces keep their function names).
// Build also sets CGO_ENABLED=0 (a static binary). Tests run the binaries
// a user runs. TANDEM_BUILD_SYMBOLS=1 keeps the symbol table (and DWARF),
// and Cleanup keeps the binaries, for perf's reports of the processes
// after the run.
var ReleaseFlags = releaseFlags()

func releaseFlags() []string {
	if os.Getenv("TANDEM_BUILD_SYMBOLS") == "1" {
		return []string{"-trimpath", "-tags=grpcnotrace"}
	}
	return []string{"-trimpath", "-tags=grpcnotrace", "-ldflags=-s -w"}
}

// Build compiles the binaries once per test process into a temporary folder.
// Call Cleanup from TestMain to remove it.
func Build() (*Binaries, error) {
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tandem-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		b := &Binaries{
			Dir:       dir,
			Tandemd:   filepath.Join(dir, "tandemd"),
			Sentry:    filepath.Join(dir, "sentry"),
			Placement: filepath.Join(dir, "placement"),
			Scheduler: filepath.Join(dir, "scheduler"),
			Tandem:    filepath.Join(dir, "tandem"),
			Echo:      filepath.Join(dir, "echo"),
			GRPCEcho:  filepath.Join(dir, "grpcecho"),
		}
		args := append([]string{"build"}, ReleaseFlags...)
		args = append(args, "-o", dir+"/",
			"./cmd/tandemd", "./cmd/sentry", "./cmd/placement", "./cmd/scheduler", "./cmd/tandem", "./test/apps/echo", "./test/apps/grpcecho")
		cmd := exec.Command("go", args...)
		cmd.Dir = RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
			return
		}
		built = b
	})
	return built, buildErr
}

// Cleanup removes the built binaries; a later Build builds them again
// (tests that clean up after themselves can run one after another).
func Cleanup() {
	if built != nil && os.Getenv("TANDEM_BUILD_SYMBOLS") != "1" {
		_ = os.RemoveAll(built.Dir)
	}
	buildOnce, built, buildErr = sync.Once{}, nil, nil
	appsMu.Lock()
	clear(apps)
	appsMu.Unlock()
}

var (
	appsMu sync.Mutex
	apps   = map[string]string{}
)

// BuildApp builds the Go program in pkg (a path from the repository root,
// such as "./test/apps/workflowapp") with the release flags into the
// binaries' folder, once per test process, and returns its path.
func BuildApp(pkg string) (string, error) {
	b, err := Build()
	if err != nil {
		return "", err
	}
	appsMu.Lock()
	defer appsMu.Unlock()
	if bin, ok := apps[pkg]; ok {
		return bin, nil
	}
	bin := filepath.Join(b.Dir, filepath.Base(pkg))
	cmd := exec.Command("go", append(append([]string{"build"}, ReleaseFlags...), "-o", bin, pkg)...)
	cmd.Dir = RepoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, out)
	}
	apps[pkg] = bin
	return bin, nil
}
