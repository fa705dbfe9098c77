// Package kafkatest starts the test Kafka peer for the Kafka components'
// tests: test/apps/kafkabroker (franz-go's kfake, an in-memory cluster
// speaking the Kafka protocol), built once per test binary and run as a
// process of its own on a random loopback port, so the components talk to
// it over real TCP with the real client. It is not Apache Kafka.
package kafkatest

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	buildOut  []byte
)

// build compiles the broker into a temporary folder that lives as long as
// the test binary.
func build() (string, error) {
	buildOnce.Do(func() {
		var root []byte
		root, buildErr = exec.Command("go", "env", "GOMOD").Output()
		if buildErr != nil {
			return
		}
		dir, err := os.MkdirTemp("", "kafkabroker")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "kafkabroker")
		cmd := exec.Command("go", "build", "-o", binPath, "./test/apps/kafkabroker")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		buildOut, buildErr = cmd.CombinedOutput()
	})
	return binPath, buildErr
}

// Broker is a running test broker.
type Broker struct {
	// Brokers is the comma-separated address list for "brokers" metadata.
	Brokers string
	args    []string
	cmd     *exec.Cmd
	once    sync.Once
}

// Start runs a broker with the given kafkabroker flags until the test
// ends (or Stop).
func Start(t testing.TB, args ...string) *Broker {
	t.Helper()
	bin, err := build()
	if err != nil {
		t.Fatalf("build test/apps/kafkabroker: %v\n%s", err, buildOut)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start kafkabroker: %v", err)
	}
	b := &Broker{cmd: cmd, args: args}
	t.Cleanup(b.Stop)
	line := make(chan string, 1)
	go func() {
		s := bufio.NewScanner(out)
		if s.Scan() {
			line <- s.Text()
		}
		close(line)
		for s.Scan() { // keep draining so the broker never blocks on stdout
		}
	}()
	select {
	case l, ok := <-line:
		addrs, found := strings.CutPrefix(l, "brokers ")
		if !ok || !found {
			t.Fatalf("kafkabroker did not report its address (first line %q)", l)
		}
		b.Brokers = addrs
	case <-time.After(30 * time.Second):
		t.Fatal("kafkabroker did not start in 30s")
	}
	return b
}

// Restart stops the broker and starts it again with the same flags on the
// same port (give it --data-dir to keep its data), for tests of brokers
// that go away and come back.
func (b *Broker) Restart(t testing.TB) *Broker {
	t.Helper()
	b.Stop()
	_, port, ok := strings.Cut(strings.Split(b.Brokers, ",")[0], "127.0.0.1:")
	if !ok {
		t.Fatalf("broker address %q is not on 127.0.0.1", b.Brokers)
	}
	nb := Start(t, append(slices.Clone(b.args), "--port", port)...)
	if nb.Brokers != b.Brokers {
		t.Fatalf("restarted broker listens on %s, not %s", nb.Brokers, b.Brokers)
	}
	return nb
}

// Stop terminates the broker (a clean shutdown, which saves the data of a
// --data-dir broker) and waits for it.
func (b *Broker) Stop() {
	b.once.Do(func() {
		_ = b.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = b.cmd.Process.Kill()
			<-done
		}
	})
}
