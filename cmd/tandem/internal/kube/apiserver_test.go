package kube

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The package's tests share one API server (etcd and kube-apiserver as processes, controller-runtime's envtest),
// started by the first test that needs it and stopped by TestMain.
var shared struct {
	once       sync.Once
	env        *envtest.Environment
	cfg        *rest.Config
	dir        string // kubeconfig and scratch files
	kubeconfig string
	kubectl    string
	skip, err  string
}

// kubeBuildDir is where scripts/build-kube.sh puts the binaries by default.
const kubeBuildDir = ".cache/tandem/kube/v1.37.2-etcd-v3.7.3"

// assetsDir returns the folder of kube-apiserver, etcd and kubectl: KUBEBUILDER_ASSETS, else build-kube.sh's.
func assetsDir() (string, error) {
	dir := os.Getenv("KUBEBUILDER_ASSETS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, kubeBuildDir)
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return "", fmt.Errorf("no %s in %s: run `export KUBEBUILDER_ASSETS=$(bash scripts/build-kube.sh)`", b, dir)
		}
	}
	return dir, nil
}

// apiServer returns the shared API server, starting it on first use. Without the binaries the test is skipped,
// or fails when CI=true.
func apiServer(t *testing.T) *envtest.Environment {
	t.Helper()
	shared.once.Do(startAPIServer)
	if shared.skip != "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(shared.skip)
		}
		t.Skip(shared.skip)
	}
	if shared.err != "" {
		t.Fatal(shared.err)
	}
	return shared.env
}

func startAPIServer() {
	dir, err := assetsDir()
	if err != nil {
		shared.skip = err.Error()
		return
	}
	shared.kubectl = filepath.Join(dir, "kubectl")
	shared.dir, err = os.MkdirTemp("", "tandem-kube-test-")
	if err != nil {
		shared.err = err.Error()
		return
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory:    dir,
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
	}
	cfg, err := env.Start()
	if err != nil {
		shared.err = "start the API server: " + err.Error()
		return
	}
	shared.env, shared.cfg = env, cfg
	user, err := env.AddUser(envtest.User{Name: "tandem-test", Groups: []string{"system:masters"}}, nil)
	if err == nil {
		var kc []byte
		kc, err = user.KubeConfig()
		if err == nil {
			shared.kubeconfig = filepath.Join(shared.dir, "kubeconfig")
			err = os.WriteFile(shared.kubeconfig, kc, 0o600)
		}
	}
	if err != nil {
		shared.err = "kubeconfig: " + err.Error()
	}
}

func stopAPIServer() error {
	var err error
	if shared.env != nil {
		err = shared.env.Stop()
	}
	if shared.dir != "" {
		os.RemoveAll(shared.dir)
	}
	return err
}

// kubectl runs the API server's kubectl with the test kubeconfig; stdin is given when not empty.
func kubectl(t *testing.T, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(shared.kubectl, append([]string{"--kubeconfig", shared.kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

func mustKubectl(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, err := kubectl(t, stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// TestMain runs the tests, stops the shared API server, then fails on goroutines the tests left running. After a
// run against the API server the check is left out: client-go and Helm's clients keep process-wide workers (klog's
// flusher, workqueues, idle HTTP/2 connections) that live as long as the process by design.
func TestMain(m *testing.M) {
	code := m.Run()
	started := shared.env != nil
	if err := stopAPIServer(); err != nil {
		fmt.Fprintln(os.Stderr, "stop the API server:", err)
		code = 1
	}
	if code == 0 && !started {
		if err := goleak.Find(
			goleak.IgnoreTopFunction("k8s.io/klog/v2.(*flushDaemon).run.func1"),
			goleak.IgnoreAnyFunction("k8s.io/client-go/util/workqueue.(*Type).updateUnfinishedWorkLoop"),
			goleak.IgnoreAnyFunction("k8s.io/client-go/util/workqueue.(*delayingType[...]).waitingLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait"),
			goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreAnyFunction("golang.org/x/net/http2.(*ClientConn).readLoop"),
		); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}
