package api

import "context"

// PubSub is the publish and subscribe API. (Stub: being written.)
type PubSub struct{}

// Run delivers subscribed messages to app until ctx ends.
func (p *PubSub) Run(ctx context.Context, app App) error {
	<-ctx.Done()
	return nil
}
