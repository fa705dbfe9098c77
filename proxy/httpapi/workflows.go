package httpapi

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/dapr/durabletask-go/api/protos"
	"github.com/google/uuid"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/workflow"
)

// registerWorkflows adds daprd's workflow routes under v1.0 and the
// v1.0-beta1 and v1.0-alpha1 aliases daprd still serves.
func (h *Handler) registerWorkflows() {
	for _, v := range []string{"v1.0", "v1.0-beta1", "v1.0-alpha1"} {
		base := "/" + v + "/workflows/{component}"
		h.route("POST "+base+"/{name}/start", h.workflowStart)
		h.route("GET "+base+"/{id}", h.workflowGet)
		h.route("POST "+base+"/{id}/terminate", h.workflowOp(apierr.WorkflowTerminate))
		h.route("POST "+base+"/{id}/pause", h.workflowOp(apierr.WorkflowPause))
		h.route("POST "+base+"/{id}/resume", h.workflowOp(apierr.WorkflowResume))
		h.route("POST "+base+"/{id}/purge", h.workflowOp(apierr.WorkflowPurge))
		h.route("POST "+base+"/{id}/raiseEvent/{event}", h.workflowOp(apierr.WorkflowRaiseEvent))
	}
}

func (h *Handler) workflowStart(w http.ResponseWriter, r *http.Request) {
	if h.cfg.Workflows == nil {
		apierr.WriteHTTP(w, apierr.Workflow(apierr.WorkflowStart, r.PathValue("name"), workflow.ErrNoActors))
		return
	}
	id := r.URL.Query().Get("instanceID")
	if id == "" {
		id = newInstanceID()
	}
	if err := apierr.ValidateWorkflowInstanceID(id, true); err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	name := r.PathValue("name")
	if name == "" {
		apierr.WriteHTTP(w, apierr.WorkflowNameMissing())
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		apierr.WriteHTTP(w, apierr.BodyRead(err))
		return
	}
	req := &protos.CreateInstanceRequest{InstanceId: id, Name: name, Input: wrapperspb.String(string(body))}
	if st := r.URL.Query().Get("dapr.workflow.start_time"); st != "" {
		if t, err := time.Parse(time.RFC3339, st); err == nil {
			req.ScheduledStartTimestamp = timestampOf(t)
		}
	}
	if _, err := h.cfg.Workflows.Start(r.Context(), req); err != nil {
		apierr.WriteHTTP(w, apierr.Workflow(apierr.WorkflowStart, name, err))
		return
	}
	writeWorkflowJSON(w, http.StatusAccepted, map[string]string{"instanceID": id})
}

// workflowJSON is daprd's GetWorkflowResponse in protojson.
type workflowJSON struct {
	InstanceID    string            `json:"instanceID,omitempty"`
	WorkflowName  string            `json:"workflowName,omitempty"`
	CreatedAt     string            `json:"createdAt,omitempty"`
	LastUpdatedAt string            `json:"lastUpdatedAt,omitempty"`
	RuntimeStatus string            `json:"runtimeStatus,omitempty"`
	Properties    map[string]string `json:"properties,omitempty"`
}

func (h *Handler) workflowGet(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := apierr.ValidateWorkflowInstanceID(id, false); err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	if h.cfg.Workflows == nil {
		apierr.WriteHTTP(w, apierr.Workflow(apierr.WorkflowGet, id, workflow.ErrNoActors))
		return
	}
	st, err := h.cfg.Workflows.Get(r.Context(), id, true)
	if err != nil {
		apierr.WriteHTTP(w, apierr.Workflow(apierr.WorkflowGet, id, err))
		return
	}
	props := workflow.Properties(st)
	writeWorkflowJSON(w, http.StatusOK, workflowJSON{
		InstanceID: id, WorkflowName: st.GetName(),
		CreatedAt: rfc3339(st.GetCreatedTimestamp().AsTime()), LastUpdatedAt: rfc3339(st.GetLastUpdatedTimestamp().AsTime()),
		RuntimeStatus: workflow.StatusName(st.GetWorkflowStatus()), Properties: props,
	})
}

// rfc3339 renders a time as protojson renders a Timestamp.
func rfc3339(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.999999999Z07:00") }

func (h *Handler) workflowOp(op apierr.WorkflowOp) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := apierr.ValidateWorkflowInstanceID(id, false); err != nil {
			apierr.WriteHTTP(w, err)
			return
		}
		if h.cfg.Workflows == nil {
			apierr.WriteHTTP(w, apierr.Workflow(op, id, workflow.ErrNoActors))
			return
		}
		e, ctx := h.cfg.Workflows, r.Context()
		var err error
		switch op {
		case apierr.WorkflowTerminate:
			err = e.Terminate(ctx, id, nil, true)
		case apierr.WorkflowPause:
			err = e.Suspend(ctx, id, nil)
		case apierr.WorkflowResume:
			err = e.Resume(ctx, id, nil)
		case apierr.WorkflowPurge:
			var deleted bool
			deleted, err = e.Purge(ctx, id, true)
			if err == nil && !deleted {
				err = workflow.ErrNotFound
			}
		case apierr.WorkflowRaiseEvent:
			name := r.PathValue("event")
			if name == "" {
				apierr.WriteHTTP(w, apierr.WorkflowEventNameMissing())
				return
			}
			body, rerr := io.ReadAll(r.Body)
			if rerr != nil {
				apierr.WriteHTTP(w, apierr.BodyRead(rerr))
				return
			}
			err = e.RaiseEvent(ctx, id, name, wrapperspb.String(string(body)))
		}
		if err != nil {
			apierr.WriteHTTP(w, apierr.Workflow(op, id, err))
			return
		}
		writeWorkflowJSON(w, http.StatusAccepted, struct{}{})
	}
}

func writeWorkflowJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func newInstanceID() string { return uuid.NewString() }

func timestampOf(t time.Time) *timestamppb.Timestamp { return timestamppb.New(t) }
