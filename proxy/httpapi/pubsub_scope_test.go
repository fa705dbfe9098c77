package httpapi

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/tandemrun/tandem/components"
)

// TestPublishForbiddenRoute: publishing (single and bulk) to a topic the
// component's publishingScopes does not grant this app answers 403
// ERR_PUBSUB_FORBIDDEN and publishes nothing.
func TestPublishForbiddenRoute(t *testing.T) {
	h, rec, _ := pubsubHandler(t, components.MetadataItem{Name: "publishingScopes", Value: "pubapp=orders", HasValue: true})
	for _, target := range []string{"/v1.0/publish/ps/payments", "/v1.0/publish/bulk/ps/payments", "/v1.0-alpha1/publish/bulk/ps/payments"} {
		body := `{"n":1}`
		if strings.Contains(target, "bulk") {
			body = `[{"entryId":"1","event":{"n":1},"contentType":"application/json"}]`
		}
		w := servePubSub(h, http.MethodPost, target, "application/json", body)
		var b struct{ ErrorCode, Message string }
		_ = json.Unmarshal(w.Body.Bytes(), &b)
		if w.Code != http.StatusForbidden || b.ErrorCode != "ERR_PUBSUB_FORBIDDEN" ||
			!strings.Contains(b.Message, "topic payments is not allowed for app id pubapp") || !strings.Contains(w.Body.String(), "publishingScopes") {
			t.Errorf("%s: %d %s", target, w.Code, w.Body)
		}
	}
	if n := len(rec.take()); n != 0 {
		t.Errorf("%d forbidden message(s) published", n)
	}
	if w := servePubSub(h, http.MethodPost, "/v1.0/publish/ps/orders", "application/json", `{}`); w.Code != http.StatusNoContent || len(rec.take()) != 1 {
		t.Errorf("allowed topic: %d %s", w.Code, w.Body)
	}
}
