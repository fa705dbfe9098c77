package v1alpha1

import (
	"maps"
	"slices"

	"k8s.io/apimachinery/pkg/runtime"
)

// DeepCopy returns a copy of c that shares no memory with it.
func (c *Component) DeepCopy() *Component {
	out := *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Scopes = slices.Clone(c.Scopes)
	out.Spec.Metadata = copyPairs(c.Spec.Metadata)
	return &out
}

// DeepCopy returns a copy of c that shares no memory with it.
func (c *Configuration) DeepCopy() *Configuration {
	out := *c
	c.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = c.Spec.DeepCopy()
	return &out
}

// DeepCopy returns a copy of r that shares no memory with it.
func (r *Resiliency) DeepCopy() *Resiliency {
	out := *r
	r.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Scopes = slices.Clone(r.Scopes)
	out.Spec.Policies = r.Spec.Policies.DeepCopy()
	out.Spec.Targets = r.Spec.Targets.DeepCopy()
	return &out
}

// DeepCopy returns a copy of s that shares no memory with it.
func (s *Subscription) DeepCopy() *Subscription {
	out := *s
	s.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Scopes = slices.Clone(s.Scopes)
	out.Spec.Metadata = maps.Clone(s.Spec.Metadata)
	out.Spec.BulkSubscribe = s.Spec.BulkSubscribe.DeepCopy()
	return &out
}

// DeepCopy returns a copy of b (nil for nil).
func (b *BulkSubscribe) DeepCopy() *BulkSubscribe {
	if b == nil {
		return nil
	}
	out := *b
	return &out
}

// DeepCopy returns a copy of h that shares no memory with it.
func (h *HTTPEndpoint) DeepCopy() *HTTPEndpoint {
	out := *h
	h.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Scopes = slices.Clone(h.Scopes)
	out.Spec.Headers = copyPairs(h.Spec.Headers)
	if t := h.Spec.ClientTLS; t != nil {
		out.Spec.ClientTLS = &ClientTLS{
			RootCA:      t.RootCA.DeepCopy(),
			Certificate: t.Certificate.DeepCopy(),
			PrivateKey:  t.PrivateKey.DeepCopy(),
		}
		if t.Renegotiation != nil {
			r := *t.Renegotiation
			out.Spec.ClientTLS.Renegotiation = &r
		}
	}
	return &out
}

// DeepCopy returns a copy of d (nil for nil).
func (d *TLSDocument) DeepCopy() *TLSDocument {
	if d == nil {
		return nil
	}
	out := TLSDocument{Value: d.Value.DeepCopy()}
	if d.SecretKeyRef != nil {
		ref := *d.SecretKeyRef
		out.SecretKeyRef = &ref
	}
	return &out
}

// DeepCopyObject implements runtime.Object.
func (c *Component) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (c *Configuration) DeepCopyObject() runtime.Object { return c.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (r *Resiliency) DeepCopyObject() runtime.Object { return r.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (s *Subscription) DeepCopyObject() runtime.Object { return s.DeepCopy() }

// DeepCopyObject implements runtime.Object.
func (h *HTTPEndpoint) DeepCopyObject() runtime.Object { return h.DeepCopy() }
