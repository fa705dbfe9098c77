package httpapi

import (
	"net/http"

	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// registerJobs adds the jobs API routes, v1.0-alpha1 and v1.0 alike, when
// cfg.Jobs is set.
func (h *Handler) registerJobs() {
	if h.cfg.Jobs == nil {
		return
	}
	for _, v := range []string{"v1.0-alpha1", "v1.0"} {
		h.route("POST /"+v+"/jobs/{name}", h.scheduleJob)
		h.route("GET /"+v+"/jobs/{name}", h.getJob)
		h.route("DELETE /"+v+"/jobs/{name}", h.deleteJob)
	}
}

// scheduleJob is POST /v1.0-alpha1/jobs/{name}: {"schedule", "dueTime",
// "repeats", "ttl", "data", "overwrite", "failurePolicy"} -> 204.
func (h *Handler) scheduleJob(w http.ResponseWriter, r *http.Request) {
	in := &internalsv1.JobHTTPRequest{}
	if !h.readProto(w, r, in) {
		return
	}
	if err := h.cfg.Jobs.ScheduleHTTP(r.Context(), r.PathValue("name"), in); err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getJob is GET /v1.0-alpha1/jobs/{name}: the job as protojson.
func (h *Handler) getJob(w http.ResponseWriter, r *http.Request) {
	job, err := h.cfg.Jobs.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		h.writeErr(w, err)
		return
	}
	b, err := protojson.Marshal(job)
	if err != nil {
		h.writeErr(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// deleteJob is DELETE /v1.0-alpha1/jobs/{name} -> 204.
func (h *Handler) deleteJob(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Jobs.Delete(r.Context(), r.PathValue("name")); err != nil {
		h.writeErr(w, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
