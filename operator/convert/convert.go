package convert

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

const (
	v1alpha1 = "dapr.io/v1alpha1"
	v2alpha1 = "dapr.io/v2alpha1"
	// maxReviewBytes bounds a ConversionReview (the API server's limit on
	// a request is 3 MiB; a list may hold many objects).
	maxReviewBytes = 32 << 20
)

// Handler serves POST /convert (apiextensions.k8s.io/v1 ConversionReview).
type Handler struct {
	Log *slog.Logger
}

// ServeHTTP implements http.Handler.
func (h Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST a ConversionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not a ConversionReview: %v", err), http.StatusBadRequest)
		return
	}
	resp := &apiextensionsv1.ConversionResponse{UID: review.Request.UID, Result: metav1.Status{Status: metav1.StatusSuccess}}
	for _, obj := range review.Request.Objects {
		out, err := Convert(obj.Raw, review.Request.DesiredAPIVersion)
		if err != nil {
			if h.Log != nil {
				h.Log.Warn("conversion refused", "desired_api_version", review.Request.DesiredAPIVersion, "error", err)
			}
			resp.ConvertedObjects = nil
			resp.Result = metav1.Status{Status: metav1.StatusFailure, Message: err.Error()}
			break
		}
		resp.ConvertedObjects = append(resp.ConvertedObjects, runtime.RawExtension{Raw: out})
	}
	review.Request = nil
	review.Response = resp
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// Convert returns the Subscription raw in version desired, its other fields
// as they are: v1alpha1's spec.route becomes v2alpha1's
// spec.routes.default and back (v2alpha1's rules have no v1alpha1 form and
// are dropped, as Dapr's conversion drops them).
func Convert(raw []byte, desired string) ([]byte, error) {
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("object is not JSON: %w", err)
	}
	if kind, _ := obj["kind"].(string); kind != "Subscription" {
		return nil, fmt.Errorf("cannot convert kind %q: only Subscription", kind)
	}
	from, _ := obj["apiVersion"].(string)
	if desired != v1alpha1 && desired != v2alpha1 {
		return nil, fmt.Errorf("cannot convert to %q: want %s or %s", desired, v1alpha1, v2alpha1)
	}
	if from != v1alpha1 && from != v2alpha1 {
		return nil, fmt.Errorf("cannot convert from %q: want %s or %s", from, v1alpha1, v2alpha1)
	}
	if from == desired {
		return raw, nil
	}
	spec, _ := obj["spec"].(map[string]any)
	if spec == nil {
		spec = map[string]any{}
	}
	switch desired {
	case v2alpha1:
		route, _ := spec["route"].(string)
		delete(spec, "route")
		spec["routes"] = map[string]any{"default": route}
	case v1alpha1:
		routes, _ := spec["routes"].(map[string]any)
		def, _ := routes["default"].(string)
		delete(spec, "routes")
		spec["route"] = def
	}
	obj["spec"] = spec
	obj["apiVersion"] = desired
	return json.Marshal(obj)
}
