package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/images"
	"github.com/tandemrun/tandem/cmd/tandem/internal/kube"
)

// imageBinaries are the binaries that get an image, as the chart names them (<repository>/<binary>:<tag>).
var imageBinaries = []string{"tandemd", "sentry", "operator", "injector", "placement", "scaler"}

func k8sImagesCommand() *cobra.Command {
	var binDir, out, arch, repository, tag, caCerts string
	cmd := &cobra.Command{
		Use:   "images",
		Short: "Build OCI image tarballs of the release binaries (no Docker needed)",
		Long: `images builds one image from scratch per release binary found in --bin-dir (tandemd, sentry, operator, placement, scaler,
injector; build them with scripts/build.sh, which makes static binaries), running as a non-root user, and writes
each as <out>/<binary>-<tag>-linux-<arch>.tar. Load them with docker load -i, kind load image-archive or ctr import.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if tag == "" {
				ch, err := kube.LoadChart()
				if err != nil {
					return err
				}
				tag = ch.Metadata.AppVersion
			}
			if err := os.MkdirAll(out, 0o755); err != nil {
				return err
			}
			built := 0
			for _, b := range imageBinaries {
				bin := filepath.Join(binDir, b)
				if _, err := os.Stat(bin); errors.Is(err, os.ErrNotExist) {
					fmt.Fprintf(cmd.OutOrStdout(), "skipped %s: %s does not exist\n", b, bin)
					continue
				}
				img, err := images.Build(images.Spec{Binary: bin, Entrypoint: "/" + b, Arch: arch, Version: tag, CACerts: caCerts})
				if err != nil {
					return err
				}
				ref := fmt.Sprintf("%s/%s:%s", repository, b, tag)
				path := filepath.Join(out, fmt.Sprintf("%s-%s-linux-%s.tar", b, tag, arch))
				if err := writeImage(path, ref, img); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s -> %s\n", ref, path)
				built++
			}
			if built == 0 {
				return fmt.Errorf("no release binary in %s (run scripts/build.sh %s)", binDir, binDir)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&binDir, "bin-dir", "bin", "folder of the static release binaries")
	f.StringVar(&out, "out", "images", "folder the tarballs are written to")
	f.StringVar(&arch, "arch", runtime.GOARCH, "architecture the binaries were built for (amd64 or arm64)")
	f.StringVar(&repository, "repository", "ghcr.io/tandemrun", "image repository (the chart's image.repository)")
	f.StringVar(&tag, "tag", "", "image tag (default the chart's appVersion, which the chart uses)")
	f.StringVar(&caCerts, "ca-certificates", defaultCACerts(), "PEM bundle of CA certificates for the images (none when empty)")
	return cmd
}

// defaultCACerts is the system's bundle where Debian-like systems keep it, so that components reach TLS servers.
func defaultCACerts() string {
	const p = "/etc/ssl/certs/ca-certificates.crt"
	if _, err := os.Stat(p); err == nil {
		return p
	}
	return ""
}

func writeImage(path, ref string, img images.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := images.Write(f, ref, img); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}
