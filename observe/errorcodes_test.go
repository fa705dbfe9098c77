package observe

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
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

// codedErr stands for proxy/apierr's *Error: a code and a category.
type codedErr struct{ code, category string }

func (e codedErr) Error() string         { return e.code }
func (e codedErr) ErrorCode() string     { return e.code }
func (e codedErr) ErrorCategory() string { return e.category }

// The public gRPC API's errors are counted as the HTTP API's are: those
// that carry a code, also wrapped (apierr.GRPC's status error); plain
// status errors are not, as in daprd.
func TestErrorCodeMetricsGRPC(t *testing.T) {
	m, reg := newTestMetrics(t, MetricsOptions{AppID: "app", RecordErrorCodes: true})
	errs := []error{
		codedErr{"ERR_INSTANCE_ID_NOT_FOUND", "workflow"},
		fmt.Errorf("purge: %w", codedErr{"ERR_INSTANCE_ID_NOT_FOUND", "workflow"}),
		status.Error(codes.NotFound, "no code"),
		nil,
	}
	for _, e := range errs {
		_, _ = m.errCodes.unary(context.Background(), nil, &grpc.UnaryServerInfo{FullMethod: "/x/Y"},
			func(context.Context, any) (any, error) { return nil, e })
	}
	_ = m.errCodes.stream(nil, nil, &grpc.StreamServerInfo{FullMethod: "/x/Z"},
		func(any, grpc.ServerStream) error { return codedErr{"ERR_TRY_LOCK", "lock"} })
	got := series(t, reg, "dapr_error_code_total")
	want := map[string]float64{
		"app_id=app,category=workflow,error_code=ERR_INSTANCE_ID_NOT_FOUND": 2,
		"app_id=app,category=lock,error_code=ERR_TRY_LOCK":                  1,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("dapr_error_code_total = %v, want %v", got, want)
	}
	var off *Metrics
	if len(off.errorCodeServerOptions()) != 0 {
		t.Error("a nil *Metrics installs error-code interceptors")
	}
	m2, _ := newTestMetrics(t, MetricsOptions{AppID: "app"})
	if len(m2.errorCodeServerOptions()) != 0 {
		t.Error("error-code interceptors installed without recordErrorCodes")
	}
}
