package observe

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// errorWriter is what apierr.WriteHTTP looks for on the response writer.
type errorWriter interface {
	RecordErrorCode(code, category string)
}

func TestErrorCodeMetrics(t *testing.T) {
	failing := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ew, ok := w.(errorWriter); ok && r.URL.Path != "/ok" {
			ew.RecordErrorCode("ERR_STATE_STORE_NOT_FOUND", "state")
		}
		w.WriteHeader(http.StatusBadRequest)
	})
	for _, on := range []bool{true, false} {
		reg := prometheus.NewRegistry()
		m, err := NewMetrics(reg, MetricsOptions{AppID: "app", RecordErrorCodes: on})
		if err != nil {
			t.Fatal(err)
		}
		h := m.HTTPMiddleware(failing)
		for _, p := range []string{"/a", "/b", "/ok"} {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, p, nil))
		}
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, mf := range mfs {
			if mf.GetName() != "dapr_error_code_total" {
				continue
			}
			for _, mt := range mf.GetMetric() {
				s := ""
				for _, l := range mt.GetLabel() {
					s += l.GetName() + "=" + l.GetValue() + ","
				}
				got = append(got, fmt.Sprintf("%s%v", s, mt.GetCounter().GetValue()))
			}
		}
		want := []string{"app_id=app,category=state,error_code=ERR_STATE_STORE_NOT_FOUND,2"}
		if !on {
			want = nil
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("recordErrorCodes %v: dapr_error_code_total = %v, want %v", on, got, want)
		}
	}
}
