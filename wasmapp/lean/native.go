//go:build !wasip1

package lean

import (
	"bytes"
	"cmp"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"time"
)

// Main serves the handler on 127.0.0.1:$APP_PORT (8080 when unset), as a
// process app behind a sidecar; it returns only when serving fails.
func Main() {
	addr := net.JoinHostPort("127.0.0.1", cmp.Or(os.Getenv("APP_PORT"), "8080"))
	srv := &http.Server{Addr: addr, Handler: http.HandlerFunc(serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.ListenAndServe())
}

// serveHTTP runs the handler for a net/http request.
func serveHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	req := Request{Method: r.Method, URI: r.URL.RequestURI(), Header: fromHTTP(r.Header), Body: body}
	var resp Response
	handler(&resp, &req)
	for _, h := range resp.Header {
		w.Header().Add(h.Name, h.Value)
	}
	w.WriteHeader(cmp.Or(resp.Status, http.StatusOK))
	_, _ = w.Write(resp.Body)
}

func fromHTTP(h http.Header) Headers {
	var out Headers
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, Header{Name: k, Value: v})
		}
	}
	return out
}

var sidecar = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256, IdleConnTimeout: 90 * time.Second}}

// Dapr calls the Dapr API of the app's sidecar: as a process app, on
// 127.0.0.1:$DAPR_HTTP_PORT (3500 when unset), with $DAPR_API_TOKEN when
// set. An error is a failure to reach the sidecar.
func Dapr(method, path string, body []byte, header ...Header) (*Response, error) {
	u := "http://" + net.JoinHostPort("127.0.0.1", cmp.Or(os.Getenv("DAPR_HTTP_PORT"), "3500")) + path
	r, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for _, h := range header {
		r.Header.Add(h.Name, h.Value)
	}
	if t := os.Getenv("DAPR_API_TOKEN"); t != "" {
		r.Header.Set("Dapr-Api-Token", t)
	}
	resp, err := sidecar.Do(r)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	return &Response{Status: resp.StatusCode, Header: fromHTTP(resp.Header), Body: b}, nil
}
