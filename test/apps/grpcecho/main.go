// Command grpcecho is a gRPC test app written with the Dapr Go SDK's service
// package: its OnInvoke answers every method by echoing the data back, and
// the method "whoami" answers with the caller's app ID; "sleep" waits for
// the duration in the data; "fail" fails.
//
// It listens on 127.0.0.1:$APP_PORT (or --port).
package main

import (
	"context"
	"errors"
	"flag"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/dapr/go-sdk/service/common"
	daprd "github.com/dapr/go-sdk/service/grpc"
	"google.golang.org/grpc/metadata"
)

func main() {
	port := flag.Int("port", 0, "port to listen on (default $APP_PORT)")
	flag.Parse()
	if *port == 0 {
		*port, _ = strconv.Atoi(os.Getenv("APP_PORT"))
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
	if err != nil {
		log.Error("listen failed; pick another port with --port or APP_PORT", "error", err)
		os.Exit(1)
	}
	s := daprd.NewServiceWithListener(ln)
	if err := s.AddServiceInvocationHandler("whoami", whoami); err != nil {
		log.Error("add handler", "error", err)
		os.Exit(1)
	}
	if err := s.AddServiceInvocationHandler("echo", echo); err != nil {
		log.Error("add handler", "error", err)
		os.Exit(1)
	}
	if err := s.AddServiceInvocationHandler("sleep", sleep); err != nil {
		log.Error("add handler", "error", err)
		os.Exit(1)
	}
	if err := s.AddServiceInvocationHandler("fail", fail); err != nil {
		log.Error("add handler", "error", err)
		os.Exit(1)
	}
	log.Info("grpc echo app listening", "addr", ln.Addr().String())
	if err := s.Start(); err != nil {
		log.Error("serve", "error", err)
		os.Exit(1)
	}
}

func echo(_ context.Context, in *common.InvocationEvent) (*common.Content, error) {
	return &common.Content{Data: in.Data, ContentType: in.ContentType, DataTypeURL: in.DataTypeURL}, nil
}

func whoami(ctx context.Context, _ *common.InvocationEvent) (*common.Content, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	caller := ""
	if v := md.Get("dapr-caller-app-id"); len(v) > 0 {
		caller = v[0]
	}
	return &common.Content{Data: []byte(caller), ContentType: "text/plain"}, nil
}

// sleep waits for the duration in the data ("3s"), or until the call is
// cancelled, and answers "slept".
func sleep(ctx context.Context, in *common.InvocationEvent) (*common.Content, error) {
	d, err := time.ParseDuration(string(in.Data))
	if err != nil {
		return nil, err
	}
	select {
	case <-time.After(d):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &common.Content{Data: []byte("slept"), ContentType: "text/plain"}, nil
}

func fail(context.Context, *common.InvocationEvent) (*common.Content, error) {
	return nil, errors.New("grpcecho: asked to fail")
}
