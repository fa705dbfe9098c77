package cluster

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tandemrun/tandem/internal/kubetest"
	"github.com/tandemrun/tandem/test/e2e/framework"
)

// Node plays the kubelet for the pods a test runs.
type Node struct {
	T *testing.T
	// CS is a client of the API server as its administrator.
	CS *kubernetes.Clientset
	// Dir holds the node's files: kubeconfigs, the pods' volumes.
	Dir string
	// Bins are the built programs, by name: tandemd, sentry, operator, injector, scaler, echo, subscriber.
	Bins map[string]string
	// Ctx ends with the test.
	Ctx context.Context

	cfg        *rest.Config // the administrator's
	kubectl    string
	adminKube  string // kubeconfig file of the administrator
	stopVolume context.CancelFunc
	wg         sync.WaitGroup
}

// NewNode returns a node on the API server cfg reaches as an administrator, with the binaries built.
func NewNode(t *testing.T, cfg *rest.Config) *Node {
	t.Helper()
	assets, err := kubetest.Assets()
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{T: t, cfg: cfg, CS: cs, Dir: t.TempDir(), kubectl: filepath.Join(assets, "kubectl"), Ctx: ctx, stopVolume: cancel}
	t.Cleanup(func() { cancel(); n.wg.Wait() })
	n.adminKube = n.writeKubeconfig("admin", func(a *clientcmdapi.AuthInfo) {
		a.ClientCertificateData, a.ClientKeyData, a.Token = cfg.CertData, cfg.KeyData, cfg.BearerToken
	})
	n.Bins = buildBinaries(t)
	return n
}

// buildBinaries builds the control plane, tandemd and the test apps once per test binary.
func buildBinaries(t *testing.T) map[string]string {
	t.Helper()
	b, err := framework.Build()
	if err != nil {
		t.Fatal(err)
	}
	bins := map[string]string{"tandemd": b.Tandemd, "sentry": b.Sentry, "echo": b.Echo,
		"operator": filepath.Join(b.Dir, "operator"), "injector": filepath.Join(b.Dir, "injector"), "scaler": filepath.Join(b.Dir, "scaler"),
		"subscriber": filepath.Join(b.Dir, "subscriber")}
	missing := slices.ContainsFunc([]string{"operator", "injector", "scaler", "subscriber"}, func(name string) bool {
		_, err := os.Stat(bins[name])
		return err != nil
	})
	if missing {
		args := append([]string{"build"}, framework.ReleaseFlags...)
		cmd := exec.Command("go", append(args, "-o", b.Dir+"/", "./cmd/operator", "./cmd/injector", "./cmd/scaler", "./test/apps/subscriber")...)
		cmd.Dir = framework.RepoRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, out)
		}
	}
	return bins
}

func (n *Node) writeKubeconfig(name string, auth func(*clientcmdapi.AuthInfo)) string {
	n.T.Helper()
	c := clientcmdapi.NewConfig()
	c.Clusters["envtest"] = &clientcmdapi.Cluster{Server: n.cfg.Host, CertificateAuthorityData: n.cfg.CAData}
	a := clientcmdapi.NewAuthInfo()
	auth(a)
	c.AuthInfos[name] = a
	c.Contexts["envtest"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: name}
	c.CurrentContext = "envtest"
	path := filepath.Join(n.Dir, "kubeconfig-"+name)
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		n.T.Fatal(err)
	}
	return path
}

// kubectlRun runs kubectl as the administrator with stdin.
func (n *Node) Kubectl(stdin string, args ...string) string {
	n.T.Helper()
	cmd := exec.Command(n.kubectl, append([]string{"--kubeconfig", n.adminKube}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		n.T.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// token asks the TokenRequest API for a token of the pod's ServiceAccount, bound to the pod, as the kubelet does
// for a projected volume (an empty audience is the API server's own).
func (n *Node) Token(pod *corev1.Pod, audience string, seconds int64) string {
	n.T.Helper()
	req := &authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &seconds,
		BoundObjectRef: &authnv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: pod.Name, UID: pod.UID}}}
	if audience != "" {
		req.Spec.Audiences = []string{audience}
	}
	sa := cmpOr(pod.Spec.ServiceAccountName, "default")
	tr, err := n.CS.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(n.Ctx, sa, req, metav1.CreateOptions{})
	if err != nil {
		n.T.Fatalf("token of %s/%s for pod %s: %v", pod.Namespace, sa, pod.Name, err)
	}
	return tr.Status.Token
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// container is how one container of a pod runs on this node.
type Container struct {
	Pod  *corev1.Pod
	Spec corev1.Container
	// Bin runs the image's entrypoint.
	Bin string
	// Args are appended to the pod spec's: this node's ports and addresses (a later flag wins).
	Args []string
	// Env is set over the pod spec's.
	Env map[string]string
	// Kubeconfig adds --kubeconfig with a token of the pod's ServiceAccount (the in-cluster configuration).
	Kubeconfig bool
}

// run starts the container as a process and returns it with the folders its volume mounts became.
func (n *Node) Run(c Container) (*framework.Process, map[string]string) {
	n.T.Helper()
	base := filepath.Join(n.Dir, c.Pod.Namespace, c.Pod.Name, c.Spec.Name)
	mounts := map[string]string{}
	for _, m := range c.Spec.VolumeMounts {
		i := slices.IndexFunc(c.Pod.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			n.T.Fatalf("pod %s mounts volume %s, which it does not have", c.Pod.Name, m.Name)
		}
		local := filepath.Join(base, m.Name)
		n.volume(c.Pod, c.Pod.Spec.Volumes[i], local)
		mounts[m.MountPath] = local
	}
	// Longest mount path first, so that a nested mount wins.
	paths := make([]string, 0, len(mounts))
	for p := range mounts {
		paths = append(paths, p)
	}
	sort.Slice(paths, func(i, j int) bool { return len(paths[i]) > len(paths[j]) })
	local := func(s string) string {
		for _, p := range paths {
			if strings.HasPrefix(s, p) {
				return mounts[p] + strings.TrimPrefix(s, p)
			}
		}
		return s
	}
	var args []string
	for _, a := range c.Spec.Args {
		args = append(args, local(a))
	}
	for _, a := range c.Args {
		args = append(args, local(a))
	}
	if c.Kubeconfig {
		tok := n.Token(c.Pod, "", 3600)
		args = append(args, "--kubeconfig", n.writeKubeconfig(c.Pod.Name, func(a *clientcmdapi.AuthInfo) { a.Token = tok }))
	}
	env := map[string]string{}
	for _, e := range c.Spec.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = local(e.Value)
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
			env[e.Name] = c.Pod.Namespace
		case e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name":
			env[e.Name] = c.Pod.Name
		default:
			n.T.Fatalf("pod %s: env %s: this node does not make %+v", c.Pod.Name, e.Name, e.ValueFrom)
		}
	}
	for k, v := range c.Env {
		env[k] = local(v)
	}
	var kv []string
	for k, v := range env {
		kv = append(kv, k+"="+v)
	}
	return framework.Start(n.T, c.Pod.Name+"/"+c.Spec.Name, c.Bin, args, kv...), mounts
}

// volume makes one of the pod's volumes in dir: ConfigMaps and Secrets are kept in step with the API server
// (written atomically, as the kubelet does), projected service account tokens are requested once.
func (n *Node) volume(pod *corev1.Pod, v corev1.Volume, dir string) {
	n.T.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		n.T.Fatal(err)
	}
	var read func() (map[string][]byte, error)
	switch {
	case v.ConfigMap != nil:
		read = func() (map[string][]byte, error) {
			cm, err := n.CS.CoreV1().ConfigMaps(pod.Namespace).Get(n.Ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			data := map[string][]byte{}
			for k, s := range cm.Data {
				data[k] = []byte(s)
			}
			return data, nil
		}
	case v.Secret != nil:
		read = func() (map[string][]byte, error) {
			s, err := n.CS.CoreV1().Secrets(pod.Namespace).Get(n.Ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				return nil, err
			}
			return s.Data, nil
		}
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken == nil {
				n.T.Fatalf("pod %s volume %s: this node only projects service account tokens", pod.Name, v.Name)
			}
			ttl := int64(3600)
			if src.ServiceAccountToken.ExpirationSeconds != nil {
				ttl = max(ttl, *src.ServiceAccountToken.ExpirationSeconds)
			}
			writeFile(n.T, filepath.Join(dir, src.ServiceAccountToken.Path), []byte(n.Token(pod, src.ServiceAccountToken.Audience, ttl)))
		}
		return
	default:
		n.T.Fatalf("pod %s volume %s: this node cannot make it", pod.Name, v.Name)
	}
	sync := func() {
		data, err := read()
		if err != nil {
			if !apierrors.IsNotFound(err) && n.Ctx.Err() == nil {
				n.T.Logf("volume %s of %s: %v", v.Name, pod.Name, err)
			}
			return
		}
		for k, b := range data {
			if old, err := os.ReadFile(filepath.Join(dir, k)); err == nil && bytes.Equal(old, b) {
				continue
			}
			writeFile(n.T, filepath.Join(dir, k), b)
		}
	}
	sync()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		for {
			select {
			case <-n.Ctx.Done():
				return
			case <-time.After(300 * time.Millisecond):
				sync()
			}
		}
	}()
}

func writeFile(t *testing.T, path string, b []byte) {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Error(err)
		return
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Error(err)
	}
}

// waitFor polls cond until it holds or the timeout passes.
func WaitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, why := cond()
		if ok {
			return
		}
		last = why
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s: not within %v (%s)", what, timeout, last)
}

func Port(t *testing.T) string { return fmt.Sprint(framework.FreePort(t)) }
