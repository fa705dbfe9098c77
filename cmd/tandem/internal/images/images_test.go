package images

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// buildHello compiles testdata/hello as a release binary is built: static, trimmed, for arch.
func buildHello(t *testing.T, arch string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "hello")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./testdata/hello")
	cmd.Env = append(os.Environ(), "GOOS=linux", "GOARCH="+arch, "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

// TestTarballs builds an image per architecture, writes its tarball, and opens it both ways a runtime does: as
// Docker's archive (manifest.json, what docker load reads) and as an OCI layout (index.json, what ctr import and
// kind read). Each must give the same image: the entrypoint, the non-root user, the architecture, and the binary.
func TestTarballs(t *testing.T) {
	for _, arch := range []string{"amd64", "arm64"} {
		t.Run(arch, func(t *testing.T) {
			bin := buildHello(t, arch)
			img, err := Build(Spec{Binary: bin, Entrypoint: "/sentry", Arch: arch, Version: "9.9.9"})
			if err != nil {
				t.Fatal(err)
			}
			const ref = "ghcr.io/tandemrun/sentry:9.9.9"
			path := filepath.Join(t.TempDir(), "sentry.tar")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := Write(f, ref, img); err != nil {
				t.Fatal(err)
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}

			tag, _ := name.NewTag(ref)
			docker, err := tarball.ImageFromPath(path, &tag)
			if err != nil {
				t.Fatalf("open as docker archive: %v", err)
			}
			checkImage(t, docker, arch, bin)

			dir := t.TempDir()
			untar(t, path, dir)
			idx, err := layout.ImageIndexFromPath(dir)
			if err != nil {
				t.Fatalf("open as OCI layout: %v", err)
			}
			im, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if len(im.Manifests) != 1 || im.Manifests[0].Annotations["io.containerd.image.name"] != ref ||
				im.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != "9.9.9" {
				t.Fatalf("index.json = %+v, want one manifest named %s", im.Manifests, ref)
			}
			oci, err := idx.Image(im.Manifests[0].Digest)
			if err != nil {
				t.Fatal(err)
			}
			checkImage(t, oci, arch, bin)
			// Both name the same config blob (the image ID docker and containerd show).
			c1, _ := docker.ConfigName()
			c2, _ := oci.ConfigName()
			if c1 != c2 {
				t.Errorf("docker archive config %s != OCI layout config %s", c1, c2)
			}
		})
	}
}

func checkImage(t *testing.T, img v1.Image, arch, bin string) {
	t.Helper()
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if got := cf.Config.Entrypoint; len(got) != 1 || got[0] != "/sentry" {
		t.Errorf("entrypoint %q, want [/sentry]", got)
	}
	if cf.Config.User != "65532:65532" {
		t.Errorf("user %q, want 65532:65532 (non-root)", cf.Config.User)
	}
	if cf.Architecture != arch || cf.OS != "linux" {
		t.Errorf("platform %s/%s, want linux/%s", cf.OS, cf.Architecture, arch)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers %d, %v; want 1", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	want, _ := os.ReadFile(bin)
	files := map[string][]byte{}
	modes := map[string]int64{}
	tr := tar.NewReader(rc)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		files[hdr.Name], modes[hdr.Name] = data, hdr.Mode
	}
	if !bytes.Equal(files["sentry"], want) || modes["sentry"] != 0o755 {
		t.Errorf("the layer's /sentry is not the binary with mode 0755 (mode %o, %d bytes)", modes["sentry"], len(files["sentry"]))
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd has no nonroot user: %q", files["etc/passwd"])
	}
}

func untar(t *testing.T, path, dir string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		target := filepath.Join(dir, filepath.FromSlash(hdr.Name))
		if hdr.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(target, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		data, _ := io.ReadAll(tr)
		if err := os.WriteFile(target, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSameBinarySameDigest: the image of a binary is reproducible (fixed times), so a rebuild does not churn.
func TestSameBinarySameDigest(t *testing.T) {
	bin := buildHello(t, "amd64")
	var digests []v1.Hash
	for range 2 {
		img, err := Build(Spec{Binary: bin, Arch: "amd64", Version: "1"})
		if err != nil {
			t.Fatal(err)
		}
		d, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, d)
	}
	if digests[0] != digests[1] {
		t.Errorf("digests differ: %v", digests)
	}
}

func TestRejects(t *testing.T) {
	arm := buildHello(t, "arm64")
	text := filepath.Join(t.TempDir(), "script")
	if err := os.WriteFile(text, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"wrong architecture", Spec{Binary: arm, Arch: "amd64"}, "not amd64"},
		{"unknown architecture", Spec{Binary: arm, Arch: "riscv"}, "want amd64 or arm64"},
		{"not an executable", Spec{Binary: text, Arch: "amd64"}, "not a Linux executable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Build(c.spec)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Build: %v, want an error with %q", err, c.want)
			}
		})
	}
}

// TestIndexJSON checks the OCI layout's index as containerd parses it (media types spelled out).
func TestIndexJSON(t *testing.T) {
	img, err := Build(Spec{Binary: buildHello(t, "amd64"), Arch: "amd64", Version: "1"})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, "example.com/x/hello:1", img); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		hdr, err := tr.Next()
		if err != nil {
			t.Fatal("no index.json")
		}
		if hdr.Name != "index.json" {
			continue
		}
		var idx struct {
			MediaType string
			Manifests []struct{ MediaType string }
		}
		if err := json.NewDecoder(tr).Decode(&idx); err != nil {
			t.Fatal(err)
		}
		if idx.MediaType != "application/vnd.oci.image.index.v1+json" || idx.Manifests[0].MediaType != "application/vnd.oci.image.manifest.v1+json" {
			t.Errorf("index.json media types %+v", idx)
		}
		return
	}
}
