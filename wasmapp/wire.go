package wasmapp

import (
	"bytes"
	"net/http"
)

// EncodeRequest is r as tandem.dapr_call takes it: HTTP/1.1 as on the
// wire (net/http's Request.Write), which the host reads with
// http.ReadRequest. The host answers in the same form (Response.Write).
func EncodeRequest(r *http.Request) ([]byte, error) {
	var b bytes.Buffer
	if err := r.Write(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
