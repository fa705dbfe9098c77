package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	internalsv1 "github.com/dapr/dapr/pkg/proto/internals/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/tandemrun/tandem/actors"
	"github.com/tandemrun/tandem/invoke"
	"github.com/tandemrun/tandem/proxy/apierr"
	"github.com/tandemrun/tandem/proxy/headers"
)

// registerActors adds daprd's actor routes. Without an actor runtime they
// answer ERR_ACTOR_NO_PLACEMENT, as daprd without placement does.
func (h *Handler) registerActors() {
	const base = "/v1.0/actors/{actorType}/{actorId}"
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodGet, http.MethodDelete} {
		h.route(m+" "+base+"/method/{method...}", h.actorMethod)
	}
	h.route("GET "+base+"/state/{key}", h.actorGetState)
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		h.route(m+" "+base+"/state", h.actorTransaction)
		h.route(m+" "+base+"/timers/{name}", h.actorCreateTimer)
		h.route(m+" "+base+"/reminders/{name}", h.actorCreateReminder)
	}
	h.route("DELETE "+base+"/timers/{name}", h.actorDeleteTimer)
	h.route("GET "+base+"/reminders/{name}", h.actorGetReminder)
	h.route("DELETE "+base+"/reminders/{name}", h.actorDeleteReminder)
}

func (h *Handler) actorMethod(w http.ResponseWriter, r *http.Request) {
	typ, id := r.PathValue("actorType"), r.PathValue("actorId")
	method, err := invoke.NormalizeMethod(r.PathValue("method"))
	if err == nil {
		err = validActor(typ, id)
	}
	if err != nil {
		apierr.WriteHTTP(w, apierr.BadRequest("%s", err))
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	md := make(headers.Metadata, len(r.Header))
	headers.FromHTTP(r.Header, md)
	req := &internalsv1.InternalInvokeRequest{
		Ver:      internalsv1.APIVersion_V1,
		Actor:    &internalsv1.Actor{ActorType: typ, ActorId: id},
		Metadata: md,
		Message: &commonv1.InvokeRequest{
			Method: method, ContentType: r.Header.Get("Content-Type"), Data: &anypb.Any{Value: body},
			HttpExtension: &commonv1.HTTPExtension{Verb: verb(r.Method), Querystring: r.URL.RawQuery},
		},
	}
	resp, err := h.cfg.Actors.Call(r.Context(), req)
	if ae, ok := err.(*actors.AppError); ok && ae.Flagged {
		md := make(headers.Metadata, len(ae.Headers))
		for k, v := range ae.Headers {
			md[k] = &internalsv1.ListStringValue{Values: v}
		}
		writeActorAnswer(w, ae.Status, ae.ContentType, md, ae.Body)
		return
	}
	if err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorInvoke, err))
		return
	}
	writeActorAnswer(w, http.StatusOK, resp.GetMessage().GetContentType(), resp.GetHeaders(), resp.GetMessage().GetData().GetValue())
}

// validActor refuses an actor type or ID that would change the path of
// the app's callback ("/", "..", "?"…), as daprd.
func validActor(typ, id string) error {
	if err := actors.ValidName("actor type", typ); err != nil {
		return err
	}
	return actors.ValidName("actor ID", id)
}

func verb(m string) commonv1.HTTPExtension_Verb {
	if v, ok := commonv1.HTTPExtension_Verb_value[strings.ToUpper(m)]; ok {
		return commonv1.HTTPExtension_Verb(v)
	}
	return commonv1.HTTPExtension_POST
}

// writeActorAnswer writes an actor's answer: status, the app's headers
// (md, only read) and body.
func writeActorAnswer(w http.ResponseWriter, status int, contentType string, md headers.Metadata, body []byte) {
	headers.ToHTTP(md, w.Header())
	if contentType != "" {
		w.Header().Set("Content-Type", contentType)
	}
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func (h *Handler) actorGetState(w http.ResponseWriter, r *http.Request) {
	if e := apierr.ReservedActorType(r.PathValue("actorType")); e != nil {
		apierr.WriteHTTP(w, e)
		return
	}
	data, md, err := h.cfg.Actors.GetStateMetadata(r.Context(), r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("key"))
	if err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorStateGet, err))
		return
	}
	for k, v := range md {
		w.Header().Set("metadata."+k, v) // as daprd: "metadata.ttlExpireTime"
	}
	if len(data) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(data)
}

func (h *Handler) actorTransaction(w http.ResponseWriter, r *http.Request) {
	if e := apierr.ReservedActorType(r.PathValue("actorType")); e != nil {
		apierr.WriteHTTP(w, e)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	var ops []actors.StateOp
	if err := json.Unmarshal(body, &ops); err != nil {
		apierr.WriteHTTP(w, apierr.MalformedRequest("%s", err))
		return
	}
	if err := h.cfg.Actors.TransactState(r.Context(), r.PathValue("actorType"), r.PathValue("actorId"), ops); err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorStateTransaction, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) actorCreateTimer(w http.ResponseWriter, r *http.Request) {
	if e := apierr.ReservedActorType(r.PathValue("actorType")); e != nil {
		apierr.WriteHTTP(w, e)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	var req actors.TimerRequest
	if err := json.Unmarshal(body, &req); err != nil {
		apierr.WriteHTTP(w, apierr.MalformedRequest("%s", err))
		return
	}
	req.ActorType, req.ActorID, req.Name = r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("name")
	if err := h.cfg.Actors.CreateTimer(r.Context(), req); err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorTimerCreate, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) actorDeleteTimer(w http.ResponseWriter, r *http.Request) {
	h.cfg.Actors.DeleteTimer(r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("name"))
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) actorCreateReminder(w http.ResponseWriter, r *http.Request) {
	if e := apierr.ReservedActorType(r.PathValue("actorType")); e != nil {
		apierr.WriteHTTP(w, e)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		apierr.WriteHTTP(w, err)
		return
	}
	var req actors.ReminderRequest
	if err := json.Unmarshal(body, &req); err != nil {
		apierr.WriteHTTP(w, apierr.MalformedRequest("%s", err))
		return
	}
	req.ActorType, req.ActorID, req.Name = r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("name")
	if err := h.cfg.Actors.CreateReminder(r.Context(), req); err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorReminderCreate, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (h *Handler) actorGetReminder(w http.ResponseWriter, r *http.Request) {
	rem, err := h.cfg.Actors.GetReminder(r.Context(), r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("name"))
	if err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorReminderGet, err))
		return
	}
	b, err := json.Marshal(reminderJSON{
		ActorID: rem.ActorID, ActorType: rem.ActorType, Data: reminderData(rem.Data), DueTime: rem.DueTime, Period: rem.Period, TTL: rem.TTL,
	})
	if err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorReminderGet, err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

// reminderJSON is daprd's answer to GET .../reminders/{name}.
type reminderJSON struct {
	ActorID   string          `json:"actorID,omitempty"`
	ActorType string          `json:"actorType,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	DueTime   string          `json:"dueTime,omitempty"`
	Period    string          `json:"period,omitempty"`
	TTL       string          `json:"ttl,omitempty"`
}

// reminderData is a reminder's data as JSON: the bytes of a BytesValue
// (what the reminder was created with), another message as protojson.
func reminderData(a *anypb.Any) json.RawMessage {
	if a == nil {
		return nil
	}
	msg, err := a.UnmarshalNew()
	if err != nil {
		return nil
	}
	if b, ok := msg.(*wrapperspb.BytesValue); ok {
		if !json.Valid(b.GetValue()) {
			s, _ := json.Marshal(string(b.GetValue()))
			return s
		}
		return b.GetValue()
	}
	out, err := protojson.Marshal(msg)
	if err != nil {
		return nil
	}
	return out
}

func (h *Handler) actorDeleteReminder(w http.ResponseWriter, r *http.Request) {
	if err := h.cfg.Actors.DeleteReminder(r.Context(), r.PathValue("actorType"), r.PathValue("actorId"), r.PathValue("name")); err != nil {
		apierr.WriteHTTP(w, apierr.Actor(apierr.ActorReminderDelete, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
