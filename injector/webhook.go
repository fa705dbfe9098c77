package injector

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// maxReviewBytes bounds an AdmissionReview body (the API server's own
// limit on objects is 3 MiB).
const maxReviewBytes = 4 << 20

// Handler serves the mutating webhook (POST an AdmissionReview v1).
type Handler struct {
	Options *Options
	// Callers says whose pods get a sidecar; nil allows every caller.
	Callers *Callers
	// Metrics, if set, counts requests and injections.
	Metrics *Metrics
	Log     *slog.Logger
}

// patchOp is one JSON patch operation.
type patchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	h.Metrics.request()
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReviewBytes))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(w, fmt.Sprintf("not an AdmissionReview: %v", err), http.StatusBadRequest)
		return
	}
	review.Response = h.admit(review.Request)
	review.Response.UID = review.Request.UID
	review.Request = nil
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(&review)
}

// admit decides one request: allowed with a patch, allowed unchanged, or
// refused with the reason.
func (h *Handler) admit(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	deny := func(msg string) *admissionv1.AdmissionResponse {
		return &admissionv1.AdmissionResponse{Allowed: false, Result: &metav1.Status{
			Status: metav1.StatusFailure, Message: msg, Reason: metav1.StatusReasonInvalid, Code: http.StatusUnprocessableEntity,
		}}
	}
	if req.Kind.Kind != "Pod" {
		h.Metrics.failedFor("", reasonPodPatch)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	if req.Operation != admissionv1.Create {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny("tandem injector: cannot decode the pod: " + err.Error())
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	if !Enabled(pod.Annotations) {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	appID := pod.Annotations[Prefix+"app-id"]
	if h.Callers != nil && !h.Callers.Allowed(req.UserInfo) {
		// As Dapr's injector: admitted without a sidecar, so only the
		// workload controllers and the allowed accounts give pods an
		// app's identity.
		h.log().Error("pod admitted without a sidecar: its creator is not an allowed controller service account (see ALLOWED_SERVICE_ACCOUNTS)",
			"namespace", req.Namespace, "pod", pod.Name+pod.GenerateName, "user", req.UserInfo.Username)
		h.Metrics.failedFor(appID, reasonPodPatch)
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	out, changed, err := h.Options.Mutate(&pod)
	if err != nil {
		h.log().Info("pod refused", "namespace", req.Namespace, "pod", pod.Name+pod.GenerateName, "error", err)
		h.Metrics.failedFor(appID, reasonPatch)
		return deny("tandem injector: " + err.Error())
	}
	if !changed {
		return &admissionv1.AdmissionResponse{Allowed: true}
	}
	patch, err := json.Marshal(podPatch(&pod, out))
	if err != nil {
		h.Metrics.failedFor(appID, reasonPatch)
		return deny("tandem injector: encode patch: " + err.Error())
	}
	h.Metrics.injected(appID)
	pt := admissionv1.PatchTypeJSONPatch
	h.log().Debug("sidecar injected", "namespace", req.Namespace, "pod", pod.Name+pod.GenerateName)
	return &admissionv1.AdmissionResponse{Allowed: true, Patch: patch, PatchType: &pt}
}

func (h *Handler) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// podPatch replaces the lists Mutate changes; "add" on an existing member
// replaces it, so it works whether or not the list was there.
func podPatch(before, after *corev1.Pod) []patchOp {
	var ops []patchOp
	if len(after.Spec.InitContainers) != len(before.Spec.InitContainers) {
		ops = append(ops, patchOp{Op: "add", Path: "/spec/initContainers", Value: after.Spec.InitContainers})
	}
	ops = append(ops,
		patchOp{Op: "add", Path: "/spec/containers", Value: after.Spec.Containers},
		patchOp{Op: "add", Path: "/spec/volumes", Value: after.Spec.Volumes},
	)
	return ops
}
