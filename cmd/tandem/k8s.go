package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"helm.sh/helm/v4/pkg/strvals"
	"sigs.k8s.io/yaml"

	"github.com/tandemrun/tandem/cmd/tandem/internal/kube"
)

// k8sCommand groups the Kubernetes commands: the control plane's Helm release (install, upgrade, status,
// uninstall), its plain manifests, and the container images.
func k8sCommand() *cobra.Command {
	o := &kube.Options{}
	cmd := &cobra.Command{
		Use:   "k8s",
		Short: "Install, upgrade, inspect or remove Tandem's control plane on Kubernetes (Helm chart built in)",
		Long: `tandem k8s manages Tandem's Kubernetes control plane (sentry, operator, sidecar injector and Dapr's CRDs)
as a Helm release, with the chart built into this binary; no helm command is needed.

  tandem k8s install --set image.tag=0.1.0      into dapr-system, waiting for the Deployments
  tandem k8s status                             health, versions, certificate expiry
  tandem k8s upgrade -f values.yaml
  tandem k8s uninstall
  tandem k8s manifests > tandem.yaml            the same as plain YAML, for kubectl apply
  tandem k8s images --bin-dir bin --out images  OCI image tarballs of the release binaries`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.Kubeconfig, "kubeconfig", "", "kubeconfig file (default $KUBECONFIG or ~/.kube/config)")
	pf.StringVar(&o.Context, "context", "", "kubeconfig context (default the current one)")
	pf.StringVarP(&o.Namespace, "namespace", "n", kube.DefaultNamespace, "namespace of the control plane")
	pf.StringVar(&o.ReleaseName, "release", kube.DefaultReleaseName, "Helm release name")
	cmd.AddCommand(k8sApplyCommand("install", o, kube.Install), k8sApplyCommand("upgrade", o, kube.Upgrade),
		k8sStatusCommand(o), k8sUninstallCommand(o), k8sManifestsCommand(o), k8sImagesCommand())
	return cmd
}

// valueFlags are Helm's -f and --set.
type valueFlags struct {
	files []string
	sets  []string
}

func (v *valueFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringArrayVarP(&v.files, "values", "f", nil, "values file (repeatable; later ones win)")
	cmd.Flags().StringArrayVar(&v.sets, "set", nil, "a value, key=value as with helm --set (repeatable)")
}

func (v *valueFlags) values() (map[string]any, error) {
	vals := map[string]any{}
	for _, f := range v.files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("values file %s: %w", f, err)
		}
		mergeValues(vals, m)
	}
	for _, s := range v.sets {
		if err := strvals.ParseInto(s, vals); err != nil {
			return nil, fmt.Errorf("--set %s: %w", s, err)
		}
	}
	return vals, nil
}

// mergeValues merges src into dst, maps key by key, other values replaced.
func mergeValues(dst, src map[string]any) {
	for k, sv := range src {
		sm, sok := sv.(map[string]any)
		dm, dok := dst[k].(map[string]any)
		if sok && dok {
			mergeValues(dm, sm)
			continue
		}
		dst[k] = sv
	}
}

func k8sApplyCommand(name string, o *kube.Options, run func(context.Context, kube.Options) error) *cobra.Command {
	var vf valueFlags
	cmd := &cobra.Command{
		Use:   name,
		Short: map[string]string{"install": "Install the control plane", "upgrade": "Upgrade the control plane to this binary's chart and the given values"}[name],
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := vf.values()
			if err != nil {
				return err
			}
			opts := *o
			opts.Values = vals
			opts.Progress = cmd.OutOrStdout()
			return run(cmd.Context(), opts)
		},
	}
	vf.add(cmd)
	cmd.Flags().BoolVar(&o.Wait, "wait", true, "wait until the control plane's Deployments are ready")
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "give up after this long")
	return cmd
}

func k8sStatusCommand(o *kube.Options) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the control plane's health, versions and certificate expiry",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := kube.Status(cmd.Context(), *o)
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			if err := r.Write(cmd.OutOrStdout(), time.Now()); err != nil {
				return err
			}
			if !r.Healthy() {
				return exitError{code: 3}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "json for machine-readable output")
	return cmd
}

func k8sUninstallCommand(o *kube.Options) *cobra.Command {
	return &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the control plane (Dapr's CRDs and the resources made with them stay)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts := *o
			opts.Progress = cmd.OutOrStdout()
			return kube.Uninstall(cmd.Context(), opts)
		},
	}
}

func k8sManifestsCommand(o *kube.Options) *cobra.Command {
	var vf valueFlags
	cmd := &cobra.Command{
		Use:   "manifests",
		Short: "Print the control plane as plain YAML for kubectl apply (helm template, CRDs included)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			vals, err := vf.values()
			if err != nil {
				return err
			}
			ch, err := kube.LoadChart()
			if err != nil {
				return err
			}
			out, err := kube.PlainManifests(ch, kube.RenderOptions{ReleaseName: o.ReleaseName, Namespace: o.Namespace, Values: vals})
			if err != nil {
				return err
			}
			_, err = fmt.Fprint(cmd.OutOrStdout(), out)
			return err
		},
	}
	vf.add(cmd)
	return cmd
}
