package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	chart "helm.sh/helm/v4/pkg/chart/v2"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"
)

// applyCRDs server-side applies the chart's CRDs (Helm installs CRDs but never upgrades them).
func applyCRDs(ctx context.Context, c *cluster, ch *chart.Chart) error {
	for _, crd := range ch.CRDObjects() {
		for _, doc := range splitYAML(string(crd.File.Data)) {
			var meta struct {
				Metadata struct{ Name string } `json:"metadata"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				return fmt.Errorf("CRD %s: %w", crd.Filename, err)
			}
			body, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return fmt.Errorf("CRD %s: %w", crd.Filename, err)
			}
			force := true
			err = c.client.Discovery().RESTClient().Patch(types.ApplyPatchType).
				AbsPath("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", meta.Metadata.Name).
				Param("fieldManager", "tandem").Param("force", fmt.Sprint(force)).
				Body(body).Do(ctx).Error()
			if err != nil {
				return fmt.Errorf("apply CRD %s: %w", meta.Metadata.Name, err)
			}
		}
	}
	return nil
}

// splitYAML splits a multi-document YAML stream, dropping documents that are only comments or blank.
func splitYAML(s string) []string {
	var docs []string
	for _, d := range strings.Split("\n"+s, "\n---") {
		for _, line := range strings.Split(d, "\n") {
			if t := strings.TrimSpace(line); t != "" && !strings.HasPrefix(t, "#") {
				docs = append(docs, strings.TrimSpace(d))
				break
			}
		}
	}
	return docs
}

// deployments lists the release's control-plane Deployments.
func (c *cluster) deployments(ctx context.Context, o Options) ([]appsv1.Deployment, error) {
	list, err := c.client.AppsV1().Deployments(o.namespace()).List(ctx, metav1.ListOptions{
		LabelSelector: "app.kubernetes.io/part-of=tandem,app.kubernetes.io/instance=" + o.releaseName(),
	})
	if err != nil {
		return nil, fmt.Errorf("list the control plane's Deployments: %w", err)
	}
	return list.Items, nil
}

func ready(d appsv1.Deployment) bool {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas == want &&
		d.Status.ReadyReplicas == want && d.Status.AvailableReplicas == want
}

func readiness(d appsv1.Deployment) string {
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return fmt.Sprintf("%d/%d ready", d.Status.ReadyReplicas, want)
}

// waitReady polls the control plane's Deployments until all are ready, saying each change of their readiness.
func waitReady(ctx context.Context, o Options, c *cluster) error {
	o.say("waiting for the control plane to be ready (timeout %s)", o.timeout())
	seen := map[string]string{}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		deps, err := c.deployments(ctx, o)
		if err != nil {
			return err
		}
		done := len(deps) > 0
		for _, d := range deps {
			if r := readiness(d); seen[d.Name] != r {
				seen[d.Name] = r
				o.say("  %-24s %s", d.Name, r)
			}
			done = done && ready(d)
		}
		if done {
			o.say("the control plane is ready")
			return nil
		}
		select {
		case <-ctx.Done():
			var waiting []string
			for _, d := range deps {
				if !ready(d) {
					waiting = append(waiting, d.Name+" "+readiness(d))
				}
			}
			return fmt.Errorf("the control plane is not ready after %s: %s", o.timeout(), strings.Join(waiting, ", "))
		case <-tick.C:
		}
	}
}

// imagesOf returns the images of a Deployment's containers, sorted.
func imagesOf(d appsv1.Deployment) []string {
	set := map[string]bool{}
	for _, c := range d.Spec.Template.Spec.Containers {
		set[c.Image] = true
	}
	return slices.Sorted(maps.Keys(set))
}
