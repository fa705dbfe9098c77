// Package pluggable is the client of Dapr pluggable binding components: a
// binding written in any language, serving dapr.proto.components.v1
// InputBinding, OutputBinding or both on a Unix socket in the pluggable
// components folder (components.SocketsFolder). The component type
// "bindings.<name>" is the socket "<name>.sock".
//
// Input events come over one Read stream and are answered on it, each
// with the app's answer or its error (AckResponseError), as daprd does;
// events are handled concurrently. An event the sidecar stops before
// handling gets no answer: the component keeps it.
//
// cmd/tandemd routes the types without a built-in binding here when such a
// socket exists (Fallback).
package pluggable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/bindings"
)

var (
	_ bindings.InputBinding  = (*Binding)(nil)
	_ bindings.OutputBinding = (*Binding)(nil)
	_ bindings.Sider         = (*Binding)(nil)
)

// Binding is one pluggable binding instance.
type Binding struct {
	log    *slog.Logger
	socket string
	name   string

	conn  *grpc.ClientConn
	in    compv1.InputBindingClient
	out   compv1.OutputBindingClient
	sides bindings.Direction
	ops   []string
}

// New returns an uninitialised client of the component listening on
// socket; log may be nil.
func New(socket string, log *slog.Logger) *Binding {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Binding{log: log, socket: socket}
}

// Fallback extends a constructor with the pluggable bindings in folder: a
// type next does not know is served by the socket of that name, when there
// is one (looked up when the component is created, so a component that
// starts after the sidecar is found on the next attempt).
func Fallback(next func(typ string) (bindings.Binding, bool), folder components.SocketsFolder, log *slog.Logger) func(typ string) (bindings.Binding, bool) {
	return func(typ string) (bindings.Binding, bool) {
		if b, ok := next(typ); ok {
			return b, true
		}
		socket, ok := folder.Socket(bindings.Category, typ)
		if !ok {
			return nil, false
		}
		if log == nil {
			return New(socket, nil), true
		}
		return New(socket, log.With("component_type", typ)), true
	}
}

// Init connects and initialises the sides the component serves.
func (b *Binding) Init(ctx context.Context, md components.Metadata) error {
	if b.conn == nil {
		conn, err := components.DialSocket(b.socket, md.Name)
		if err != nil {
			return err
		}
		b.conn = conn
		b.in, b.out = compv1.NewInputBindingClient(conn), compv1.NewOutputBindingClient(conn)
	}
	b.name = md.Name
	meta := &compv1.MetadataRequest{Properties: md.Properties}
	_, err := b.in.Init(ctx, &compv1.InputBindingInitRequest{Metadata: meta}, grpc.WaitForReady(true))
	switch {
	case err == nil:
		b.sides.Input = true
	case status.Code(err) != codes.Unimplemented:
		return fmt.Errorf("pluggable binding %s: init: %w", b.socket, err)
	}
	_, err = b.out.Init(ctx, &compv1.OutputBindingInitRequest{Metadata: meta}, grpc.WaitForReady(true))
	switch {
	case err == nil:
		b.sides.Output = true
		ops, err := b.out.ListOperations(ctx, &compv1.ListOperationsRequest{})
		if err != nil {
			return fmt.Errorf("pluggable binding %s: list operations: %w", b.socket, err)
		}
		b.ops = ops.GetOperations()
	case status.Code(err) != codes.Unimplemented:
		return fmt.Errorf("pluggable binding %s: init: %w", b.socket, err)
	}
	if !b.sides.Input && !b.sides.Output {
		return components.Permanent(fmt.Errorf("pluggable binding %s serves neither InputBinding nor OutputBinding", b.socket))
	}
	return nil
}

// Sides are the services the component serves.
func (b *Binding) Sides() bindings.Direction { return b.sides }

// Operations lists what the component said it does.
func (b *Binding) Operations() []string { return b.ops }

// Invoke calls the component's output side.
func (b *Binding) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	if !b.sides.Output {
		return nil, errors.New("pluggable binding has no output side")
	}
	resp, err := b.out.Invoke(ctx, &compv1.InvokeRequest{Data: req.Data, Metadata: req.Metadata, Operation: req.Operation})
	if err != nil {
		return nil, err
	}
	return &bindings.InvokeResponse{Data: resp.GetData(), Metadata: resp.GetMetadata(), ContentType: resp.GetContentType()}, nil
}

// Read opens the Read stream and answers each event with h's outcome
// until ctx ends, then returns once the handlers it started have
// returned. A broken stream is opened again after a second.
func (b *Binding) Read(ctx context.Context, h bindings.Handler) error {
	if !b.sides.Input {
		return errors.New("pluggable binding has no input side")
	}
	for {
		err := b.read(ctx, h)
		if ctx.Err() != nil {
			return nil
		}
		b.log.Warn("pluggable binding's Read stream ended; opening it again", "binding", b.name, "error", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Second):
		}
	}
}

func (b *Binding) read(ctx context.Context, h bindings.Handler) error {
	stream, err := b.in.Read(ctx, grpc.WaitForReady(true))
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	var sendMu sync.Mutex
	for {
		msg, err := stream.Recv()
		if err != nil {
			return err
		}
		wg.Go(func() {
			data, err := h(ctx, &bindings.Event{Data: msg.GetData(), Metadata: msg.GetMetadata()})
			ack := &compv1.ReadRequest{ResponseData: data, MessageId: msg.GetMessageId()}
			if err != nil {
				ack.ResponseError = &compv1.AckResponseError{Message: err.Error()}
			}
			sendMu.Lock()
			defer sendMu.Unlock()
			if err := stream.Send(ack); err != nil && ctx.Err() == nil {
				b.log.Error("pluggable binding: answering an event failed", "binding", b.name, "message_id", msg.GetMessageId(), "error", err)
			}
		})
	}
}

// Close closes the connection.
func (b *Binding) Close() error {
	if b.conn == nil {
		return nil
	}
	err := b.conn.Close()
	b.conn = nil
	return err
}
