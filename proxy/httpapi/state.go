package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"net/http"
	"strings"

	"github.com/tandemrun/tandem/components/state"
	"github.com/tandemrun/tandem/proxy/apierr"
)

// registerState adds daprd's state routes when cfg.State is set.
func (h *Handler) registerState() {
	if h.cfg.State == nil {
		return
	}
	for _, m := range []string{http.MethodPost, http.MethodPut} {
		h.route(m+" /v1.0/state/{storeName}", h.saveState)
		h.route(m+" /v1.0/state/{storeName}/bulk", h.bulkGetState)
		h.route(m+" /v1.0/state/{storeName}/transaction", h.stateTransaction)
		h.route(m+" /v1.0-alpha1/state/{storeName}/query", h.queryState)
	}
	h.route("GET /v1.0/state/{storeName}/{key}", h.getState)
	h.route("DELETE /v1.0/state/{storeName}/{key}", h.deleteState)
}

// stateMetadataFromQuery collects the metadata.* query parameters (first
// value of each), as daprd's getMetadataFromRequest.
func stateMetadataFromQuery(r *http.Request) map[string]string {
	const prefix = "metadata."
	md := map[string]string{}
	for k, v := range r.URL.Query() {
		if name, ok := strings.CutPrefix(k, prefix); ok && len(v) > 0 {
			md[name] = v[0]
		}
	}
	return md
}

// stateReadBody reads the whole request body, mapping the size limit to
// 413.
func (h *Handler) stateReadBody(r *http.Request) ([]byte, error) {
	if r.Body == nil {
		return nil, nil
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			return nil, apierr.BodyTooLarge(h.cfg.MaxRequestBodySize)
		}
		return nil, apierr.BodyRead(err)
	}
	return b, nil
}

// stateFail writes err and logs it at debug level.
func (h *Handler) stateFail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Debug("state/secrets API request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	apierr.WriteHTTP(w, err)
}

// stateWriteJSON writes v as a JSON 200 response.
func stateWriteJSON(w http.ResponseWriter, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		apierr.WriteHTTP(w, apierr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

// stateOptionsJSON is the "options" object of a state item.
type stateOptionsJSON struct {
	Concurrency string `json:"concurrency"`
	Consistency string `json:"consistency"`
}

// stateItemJSON is one item of POST /v1.0/state/{store} and the request of
// a transaction operation.
type stateItemJSON struct {
	Key      string            `json:"key"`
	Value    json.RawMessage   `json:"value"`
	ETag     *string           `json:"etag"`
	Metadata map[string]string `json:"metadata"`
	Options  *stateOptionsJSON `json:"options"`
}

func (it *stateItemJSON) options() state.Options {
	if it.Options == nil {
		return state.Options{}
	}
	return state.Options{
		Concurrency: state.Concurrency(it.Options.Concurrency),
		Consistency: state.Consistency(it.Options.Consistency),
	}
}

// setRequest turns an item into a write with the query's metadata merged
// over the item's (daprd's order). The value is stored as its compact JSON
// text; a missing value is JSON null.
func (it *stateItemJSON) setRequest(query map[string]string) state.SetRequest {
	md := maps.Clone(it.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, query)
	return state.SetRequest{
		Key:      it.Key,
		Value:    stateCompactJSON(it.Value),
		ETag:     it.ETag,
		Metadata: md,
		Options:  it.options(),
	}
}

func (it *stateItemJSON) deleteRequest(query map[string]string) state.DeleteRequest {
	md := maps.Clone(it.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, query)
	return state.DeleteRequest{Key: it.Key, ETag: it.ETag, Metadata: md, Options: it.options()}
}

// stateCompactJSON returns raw JSON without insignificant whitespace (daprd
// re-marshals values, which also compacts them). raw was validated by the
// decoder.
func stateCompactJSON(raw json.RawMessage) []byte {
	if len(raw) == 0 {
		return []byte("null")
	}
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil {
		return append([]byte(nil), raw...)
	}
	return b.Bytes()
}

// decodeStateSave decodes the body of POST /v1.0/state/{store}: a JSON
// array of items. query is the request's metadata.* parameters.
func decodeStateSave(body []byte, query map[string]string) ([]state.SetRequest, error) {
	var items []stateItemJSON
	if err := json.Unmarshal(body, &items); err != nil {
		return nil, apierr.MalformedRequest("failed deserializing HTTP body: %v", err)
	}
	reqs := make([]state.SetRequest, len(items))
	for i := range items {
		if items[i].Key == "" {
			return nil, apierr.MalformedRequest(`"key" is a required field`)
		}
		reqs[i] = items[i].setRequest(query)
	}
	return reqs, nil
}

// stateTransactionJSON is the body of POST /v1.0/state/{store}/transaction.
type stateTransactionJSON struct {
	Operations []struct {
		Operation string          `json:"operation"`
		Request   json.RawMessage `json:"request"`
	} `json:"operations"`
	Metadata map[string]string `json:"metadata"`
}

// decodeTransaction decodes a transaction body. Query metadata is merged
// into the request's metadata and into every operation's, as daprd does.
func decodeTransaction(body []byte, query map[string]string) (state.TransactionRequest, error) {
	var raw stateTransactionJSON
	if err := json.Unmarshal(body, &raw); err != nil {
		return state.TransactionRequest{}, apierr.MalformedRequest("failed deserializing HTTP body: %v", err)
	}
	md := maps.Clone(raw.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, query)
	req := state.TransactionRequest{Metadata: md, Operations: make([]state.Operation, 0, len(raw.Operations))}
	for i, op := range raw.Operations {
		var it stateItemJSON
		if len(op.Request) > 0 {
			if err := json.Unmarshal(op.Request, &it); err != nil {
				return state.TransactionRequest{}, apierr.MalformedRequest("failed deserializing HTTP body: operation %d: %v", i, err)
			}
		}
		switch op.Operation {
		case "upsert":
			u := it.setRequest(query)
			req.Operations = append(req.Operations, state.Operation{Upsert: &u})
		case "delete":
			d := it.deleteRequest(query)
			req.Operations = append(req.Operations, state.Operation{Delete: &d})
		default:
			return state.TransactionRequest{}, apierr.StateOperationNotSupported(op.Operation)
		}
	}
	return req, nil
}

// saveState is POST|PUT /v1.0/state/{storeName}.
func (h *Handler) saveState(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("storeName")
	if err := h.cfg.State.Check(store); err != nil {
		h.stateFail(w, r, err)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	reqs, err := decodeStateSave(body, stateMetadataFromQuery(r))
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if err := h.cfg.State.Save(r.Context(), store, reqs); err != nil {
		h.stateFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// getState is GET /v1.0/state/{storeName}/{key}: the stored bytes with
// their ETag, or 204 when the key is missing.
func (h *Handler) getState(w http.ResponseWriter, r *http.Request) {
	store, key := r.PathValue("storeName"), r.PathValue("key")
	req := state.GetRequest{
		Key:      key,
		Metadata: stateMetadataFromQuery(r),
		Options:  state.Options{Consistency: state.Consistency(r.URL.Query().Get("consistency"))},
	}
	resp, err := h.cfg.State.Get(r.Context(), store, req)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if resp == nil {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	hd := w.Header()
	if resp.ETag != nil {
		hd.Set("ETag", *resp.ETag)
	}
	for k, v := range resp.Metadata {
		hd.Set("metadata."+k, v)
	}
	hd.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(resp.Data)
}

// deleteState is DELETE /v1.0/state/{storeName}/{key}. An If-Match header
// (even empty) is the ETag.
func (h *Handler) deleteState(w http.ResponseWriter, r *http.Request) {
	store, key := r.PathValue("storeName"), r.PathValue("key")
	q := r.URL.Query()
	req := state.DeleteRequest{
		Key:      key,
		Metadata: stateMetadataFromQuery(r),
		Options: state.Options{
			Concurrency: state.Concurrency(q.Get("concurrency")),
			Consistency: state.Consistency(q.Get("consistency")),
		},
	}
	if v, ok := r.Header["If-Match"]; ok {
		etag := ""
		if len(v) > 0 {
			etag = v[0]
		}
		req.ETag = &etag
	}
	if err := h.cfg.State.Delete(r.Context(), store, req); err != nil {
		h.stateFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// bulkGetJSON is the body of POST /v1.0/state/{store}/bulk.
type bulkGetJSON struct {
	Keys        []string          `json:"keys"`
	Parallelism int               `json:"parallelism"`
	Metadata    map[string]string `json:"metadata"`
}

// bulkItemJSON is one item of a bulk get response.
type bulkItemJSON struct {
	Key      string            `json:"key"`
	Data     json.RawMessage   `json:"data,omitempty"`
	ETag     *string           `json:"etag,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Error    string            `json:"error,omitempty"`
}

// stateJSONData returns stored bytes for embedding in a JSON response: as is
// when they are JSON (HTTP saves), else as a base64 string (binary values
// saved over gRPC), which is how daprd's proto-JSON shows bytes.
func stateJSONData(b []byte) json.RawMessage {
	if b == nil {
		return nil
	}
	if json.Valid(b) {
		return b
	}
	enc, _ := json.Marshal(b) // []byte marshals as a base64 string
	return enc
}

// bulkGetState is POST|PUT /v1.0/state/{storeName}/bulk.
func (h *Handler) bulkGetState(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("storeName")
	if err := h.cfg.State.Check(store); err != nil {
		h.stateFail(w, r, err)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	var in bulkGetJSON
	if err := json.Unmarshal(body, &in); err != nil {
		h.stateFail(w, r, apierr.MalformedRequest("failed deserializing HTTP body: %v", err))
		return
	}
	md := maps.Clone(in.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	maps.Copy(md, stateMetadataFromQuery(r))
	resps, err := h.cfg.State.BulkGet(r.Context(), store, in.Keys, md, in.Parallelism)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	out := make([]bulkItemJSON, len(resps))
	for i, g := range resps {
		out[i] = bulkItemJSON{Key: g.Key, Data: stateJSONData(g.Data), ETag: g.ETag, Metadata: g.Metadata, Error: g.Error}
	}
	stateWriteJSON(w, out)
}

// stateTransaction is POST|PUT /v1.0/state/{storeName}/transaction.
func (h *Handler) stateTransaction(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("storeName")
	if err := h.cfg.State.CheckTransactional(store, h.cfg.AppID); err != nil {
		h.stateFail(w, r, err)
		return
	}
	body, err := h.stateReadBody(r)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	req, err := decodeTransaction(body, stateMetadataFromQuery(r))
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if err := h.cfg.State.Transact(r.Context(), store, req); err != nil {
		h.stateFail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// queryResponseJSON is the body of a query answer.
type queryResponseJSON struct {
	Results  []queryItemJSON   `json:"results"`
	Token    string            `json:"token,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
}

type queryItemJSON struct {
	Key   string          `json:"key"`
	Data  json.RawMessage `json:"data"`
	ETag  *string         `json:"etag,omitempty"`
	Error string          `json:"error,omitempty"`
}

// queryState is POST|PUT /v1.0-alpha1/state/{storeName}/query; no results
// is 204, as in daprd.
func (h *Handler) queryState(w http.ResponseWriter, r *http.Request) {
	store := r.PathValue("storeName")
	body, err := h.stateReadBody(r)
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	resp, err := h.cfg.State.Query(r.Context(), store, body, stateMetadataFromQuery(r))
	if err != nil {
		h.stateFail(w, r, err)
		return
	}
	if len(resp.Results) == 0 {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	out := queryResponseJSON{Results: make([]queryItemJSON, len(resp.Results)), Token: resp.Token, Metadata: resp.Metadata}
	for i, it := range resp.Results {
		data := stateJSONData(it.Data)
		if data == nil {
			data = json.RawMessage("null")
		}
		out.Results[i] = queryItemJSON{Key: it.Key, Data: data, Error: it.Error}
		if it.ETag != nil && *it.ETag != "" {
			out.Results[i].ETag = it.ETag
		}
	}
	stateWriteJSON(w, out)
}
