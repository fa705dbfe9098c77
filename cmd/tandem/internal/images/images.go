// Package images builds the container images of Tandem's release binaries without Docker: one image per static
// binary, from scratch (the binary, /etc/passwd with a non-root user, /tmp and, when given, the CA certificates),
// written as a tarball that holds both an OCI image layout and Docker's manifest.json, so that docker load,
// kind load image-archive and ctr import all accept it.
package images

import (
	"archive/tar"
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Image is a built image (go-containerregistry's).
type Image = v1.Image

// NonRoot is the user every image runs as (distroless' nonroot), so that Kubernetes' runAsNonRoot can check it.
const NonRoot = "65532:65532"

// Spec is one image to build.
type Spec struct {
	Binary     string // path of the static Linux binary
	Entrypoint string // where the binary goes in the image, "/" + its name when empty
	Arch       string // GOARCH of the binary: amd64 or arm64
	Version    string // the org.opencontainers.image.version label
	CACerts    string // a PEM bundle copied to /etc/ssl/certs/ca-certificates.crt; none when empty
}

// machines maps GOARCH to the ELF machine its binaries are built for.
var machines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// epoch is every file's and the image's creation time, so that the same binary gives the same image digest.
var epoch = time.Unix(0, 0).UTC()

// Build makes the image of one binary. The binary must be a static Linux executable for Spec.Arch: an image from
// scratch has no dynamic loader and no libc.
func Build(s Spec) (v1.Image, error) {
	if err := checkStatic(s.Binary, s.Arch); err != nil {
		return nil, err
	}
	entry := s.Entrypoint
	if entry == "" {
		entry = "/" + path.Base(s.Binary)
	}
	layer, err := rootfs(s, entry)
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON), layer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = s.Arch, "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = []string{entry}
	cf.Config.User = NonRoot
	cf.Config.WorkingDir = "/"
	cf.Config.Env = []string{"PATH=/"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":   path.Base(entry),
		"org.opencontainers.image.version": s.Version,
		"org.opencontainers.image.source":  "https://github.com/tandemrun/tandem",
	}
	return mutate.ConfigFile(img, cf)
}

func checkStatic(binary, arch string) error {
	want, ok := machines[arch]
	if !ok {
		return fmt.Errorf("architecture %q: want amd64 or arm64", arch)
	}
	f, err := elf.Open(binary)
	if err != nil {
		return fmt.Errorf("%s: not a Linux executable: %w", binary, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%s is built for %s, not %s", binary, f.Machine, arch)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked: build it with CGO_ENABLED=0", binary)
		}
	}
	return nil
}

// rootfs is the image's one layer.
func rootfs(s Spec, entry string) (v1.Layer, error) {
	bin, err := os.ReadFile(s.Binary)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dir := func(name string, mode int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: epoch, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		hdr := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Format: tar.FormatPAX}
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	errs := []error{
		dir("etc", 0o755),
		file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")),
		file("etc/group", 0o644, []byte("root:x:0:\nnonroot:x:65532:\n")),
		dir("tmp", 0o1777),
		file(entry[1:], 0o755, bin),
	}
	if s.CACerts != "" {
		pem, err := os.ReadFile(s.CACerts)
		if err != nil {
			return nil, err
		}
		errs = append(errs, dir("etc/ssl", 0o755), dir("etc/ssl/certs", 0o755), file("etc/ssl/certs/ca-certificates.crt", 0o644, pem))
	}
	errs = append(errs, tw.Close())
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("image layer: %w", err)
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}
