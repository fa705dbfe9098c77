package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"

	"github.com/tandemrun/tandem/identity"
	"github.com/tandemrun/tandem/internal/task"
	"github.com/tandemrun/tandem/operator/convert"
)

// webhookTask serves the Subscription CRD's conversion webhook at /convert
// over HTTPS with the operator's SVID, as Dapr's operator on
// --webhook-server-port. It is not critical: a port that cannot be had
// leaves the operator API serving (Tandem's chart installs the CRD without
// a conversion webhook), with the error logged.
func webhookTask(o *Options, src *identity.Source, log *slog.Logger) task.Task {
	return task.Task{Name: "conversion webhook", Run: func(ctx context.Context) error {
		addr := net.JoinHostPort(o.WebhookListenAddress, strconv.Itoa(o.WebhookPort))
		lis, err := net.Listen("tcp", addr)
		if err != nil {
			log.Error("conversion webhook not served (choose another --webhook-server-port, or 0 to turn it off)", "address", addr, "error", err)
			return nil
		}
		mux := http.NewServeMux()
		mux.Handle("/convert", convert.Handler{Log: log})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: tlsconfig.GetCertificate(src)}}
		log.Info("conversion webhook serving", "address", lis.Addr().String())
		done := make(chan error, 1)
		go func() { done <- srv.ServeTLS(lis, "", "") }()
		select {
		case err := <-done:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		case <-ctx.Done():
		}
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-done
		return nil
	}}
}
