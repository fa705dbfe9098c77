// Package pluggable is the client of Dapr pluggable pub/sub components: a
// broker written in any language, serving dapr.proto.components.v1.PubSub
// on a Unix socket in the pluggable components folder
// (components.SocketsFolder). The component type "pubsub.<name>" is the
// socket "<name>.sock".
//
// Messages come over one PullMessages stream per subscription and are
// acknowledged on it: an ack without error once the handler returned nil,
// an ack with the handler's error (the broker's nack) when it failed while
// the subscription runs. A message the subscription stops before handling,
// or whose handler fails because it stops, gets no answer at all: the
// broker keeps it and redelivers it after the stream ends, so it is never
// dead-lettered because the sidecar stopped.
//
// cmd/tandemd routes the types without a built-in broker here when such a
// socket exists (Fallback).
package pluggable

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	compv1 "github.com/dapr/dapr/pkg/proto/components/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

var (
	_ pubsub.PubSub = (*PubSub)(nil)
	_ pubsub.Pauser = (*PubSub)(nil)
)

// PubSub is one pluggable broker instance.
type PubSub struct {
	log    *slog.Logger
	socket string

	life     pubsub.Lifecycle
	conn     *grpc.ClientConn
	client   compv1.PubSubClient
	features []pubsub.Feature
}

// New returns an uninitialised client of the component listening on socket;
// log may be nil.
func New(socket string, log *slog.Logger) *PubSub {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &PubSub{log: log, socket: socket}
}

// Fallback extends a kind's constructor with the pluggable brokers in
// folder: a type next does not know is served by the socket of that name,
// when there is one (looked up when the component is created, so a broker
// that starts after the sidecar is found on the next attempt).
func Fallback(next func(typ string) (pubsub.PubSub, bool), folder components.SocketsFolder, log *slog.Logger) func(typ string) (pubsub.PubSub, bool) {
	return func(typ string) (pubsub.PubSub, bool) {
		if ps, ok := next(typ); ok {
			return ps, true
		}
		socket, ok := folder.Socket(pubsub.Category, typ)
		if !ok {
			return nil, false
		}
		if log == nil {
			return New(socket, nil), true
		}
		return New(socket, log.With("component_type", typ)), true
	}
}

// Init connects, sends the component's metadata and reads its features.
func (p *PubSub) Init(ctx context.Context, md components.Metadata) error {
	if p.conn == nil {
		conn, err := components.DialSocket(p.socket, md.Name)
		if err != nil {
			return err
		}
		p.conn, p.client = conn, compv1.NewPubSubClient(conn)
	}
	if _, err := p.client.Init(ctx, &compv1.PubSubInitRequest{
		Metadata: &compv1.MetadataRequest{Properties: md.Properties},
	}, grpc.WaitForReady(true)); err != nil {
		return fmt.Errorf("pluggable pub/sub %s: init: %w", p.socket, err)
	}
	fr, err := p.client.Features(ctx, &compv1.FeaturesRequest{})
	if err != nil {
		return fmt.Errorf("pluggable pub/sub %s: features: %w", p.socket, err)
	}
	p.features = p.features[:0]
	for _, f := range fr.GetFeatures() {
		p.features = append(p.features, pubsub.Feature(f))
	}
	return nil
}

// Features lists what the component said it has.
func (p *PubSub) Features() []pubsub.Feature { return p.features }

// Publish sends one message; the component's error is returned as it is.
func (p *PubSub) Publish(ctx context.Context, req *pubsub.PublishRequest) error {
	if p.client == nil {
		return errors.New("pluggable pub/sub: Publish before Init")
	}
	_, err := p.client.Publish(ctx, &compv1.PublishRequest{
		Topic: req.Topic, Data: req.Data, Metadata: req.Metadata, ContentType: req.ContentType,
	})
	return err
}

// Pause asks the component to stop handing out messages; a component
// without the RPC gives ErrPauseUnsupported.
func (p *PubSub) Pause(ctx context.Context) error {
	if p.client == nil {
		return pubsub.ErrPauseUnsupported
	}
	_, err := p.client.Pause(ctx, &compv1.PauseRequest{})
	if status.Code(err) == codes.Unimplemented {
		return pubsub.ErrPauseUnsupported
	}
	return err
}

// Subscribe opens the topic's PullMessages stream. Messages are handled one
// at a time in the order the component sends them, as daprd does, unless
// req.MaxConcurrency allows more.
func (p *PubSub) Subscribe(ctx context.Context, req pubsub.SubscribeRequest, h pubsub.Handler) error {
	if p.client == nil {
		return errors.New("pluggable pub/sub: Subscribe before Init")
	}
	// The stream outlives the subscription's context until the handlers
	// running then are answered.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	stream, err := p.client.PullMessages(streamCtx)
	if err == nil {
		err = stream.Send(&compv1.PullMessagesRequest{Topic: &compv1.Topic{Name: req.Topic, Metadata: req.Metadata}})
	}
	if err != nil {
		cancelStream()
		return fmt.Errorf("pluggable pub/sub %s: subscribe to %q: %w", p.socket, req.Topic, err)
	}
	s := &pull{stream: stream, topic: req.Topic, log: p.log}
	if !p.life.Go(ctx, func(subCtx context.Context) {
		s.run(subCtx, cancelStream, h, req)
	}) {
		cancelStream()
		return errors.New("pluggable pub/sub: closed")
	}
	return nil
}

// Close waits for the handlers running and ends the streams (messages not
// acknowledged stay with the component), then closes the connection.
func (p *PubSub) Close() error {
	if !p.life.Close() || p.conn == nil {
		return nil
	}
	return p.conn.Close()
}
