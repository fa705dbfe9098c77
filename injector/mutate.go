package injector

import (
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
)

// Mutate returns pod with the sidecar added, and whether anything changed.
// Pods not annotated dapr.io/enabled and pods that already have the
// sidecar are returned unchanged; malformed annotations are an error.
func (o *Options) Mutate(pod *corev1.Pod) (*corev1.Pod, bool, error) {
	if !Enabled(pod.Annotations) || hasSidecar(pod) {
		return pod, false, nil
	}
	name := pod.Name
	if name == "" {
		name = pod.GenerateName // the API server names the pod after admission
	}
	c, err := Parse(pod.Annotations, name)
	if err != nil {
		return nil, false, err
	}
	if _, set := pod.Annotations[Prefix+"enable-native-sidecar"]; !set && o.ClassicSidecarDefault {
		c.NativeSidecar = false
	}
	if c.AppID == "" {
		return nil, false, fmt.Errorf("annotation %sapp-id is required for a pod without a name", Prefix)
	}
	out := pod.DeepCopy()
	for _, v := range o.volumes() {
		if slices.ContainsFunc(out.Spec.Volumes, func(have corev1.Volume) bool { return have.Name == v.Name }) {
			return nil, false, fmt.Errorf("the pod already has a volume named %s, which the sidecar needs", v.Name)
		}
		out.Spec.Volumes = append(out.Spec.Volumes, v)
	}
	for _, m := range append(slices.Clone(c.VolumeMounts), c.VolumeMountsRW...) {
		if !slices.ContainsFunc(out.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == m[0] }) {
			return nil, false, fmt.Errorf("annotation %svolume-mounts: the pod has no volume named %s", Prefix, m[0])
		}
	}
	for i := range out.Spec.Containers {
		appEnv(&out.Spec.Containers[i], c)
	}
	sidecar := o.sidecar(c)
	if c.NativeSidecar {
		always := corev1.ContainerRestartPolicyAlways
		sidecar.RestartPolicy = &always
		// First, so it runs before the app's own init containers too.
		out.Spec.InitContainers = append([]corev1.Container{sidecar}, out.Spec.InitContainers...)
	} else {
		out.Spec.Containers = append(out.Spec.Containers, sidecar)
	}
	return out, true, nil
}

func hasSidecar(pod *corev1.Pod) bool {
	is := func(c corev1.Container) bool { return c.Name == SidecarName }
	return slices.ContainsFunc(pod.Spec.Containers, is) || slices.ContainsFunc(pod.Spec.InitContainers, is)
}
