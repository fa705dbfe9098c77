package main

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestEcho(t *testing.T) {
	srv := httptest.NewServer(echo())
	defer srv.Close()
	tests := []struct {
		name string
		body string
		ct   string
	}{
		{"empty", "", ""},
		{"small", "hello", "text/plain"},
		{"1 KiB", strings.Repeat("x", 1024), "application/octet-stream"},
		{"1 MiB", strings.Repeat("y", 1<<20), "application/json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/echo", strings.NewReader(tt.body))
			if tt.ct != "" {
				req.Header.Set("Content-Type", tt.ct)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !bytes.Equal(got, []byte(tt.body)) {
				t.Errorf("status %d, %d bytes back, want 200 and %d bytes", resp.StatusCode, len(got), len(tt.body))
			}
			if tt.ct != "" && resp.Header.Get("Content-Type") != tt.ct {
				t.Errorf("content type %q, want %q", resp.Header.Get("Content-Type"), tt.ct)
			}
		})
	}
}
