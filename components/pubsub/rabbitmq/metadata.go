package rabbitmq

import (
	"fmt"
	"net/url"
	"time"

	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/pubsub"
)

// config is the component's metadata with Dapr's names. Defaults differ
// from Dapr's where Dapr's would lose messages: queues and exchanges are
// durable and not auto-deleted, and messages are persistent (deliveryMode 2);
// set durable=false, deletedWhenUnused=true, deliveryMode=0 to share queues
// Dapr declared with its defaults.
type config struct {
	URL               string        // connectionString, or protocol://username:password@hostname
	ConsumerID        string        // consumerID (default: app ID)
	Durable           bool          // durable
	DeletedWhenUnused bool          // deletedWhenUnused
	DeliveryMode      uint8         // deliveryMode: 2 persistent, else transient
	PrefetchCount     int           // prefetchCount (default: the subscription's concurrency)
	Concurrency       int           // concurrency (number, or Dapr's single/parallel)
	ExchangeKind      string        // exchangeKind: fanout or topic
	ReconnectWait     time.Duration // reconnectWaitSeconds / reconnectWait
	ClientName        string        // clientName
}

func parseConfig(md components.Metadata) (config, error) {
	c := config{
		URL:          md.String("connectionString", ""),
		ConsumerID:   md.String(pubsub.MetadataConsumerID, md.AppID),
		ExchangeKind: md.String("exchangeKind", "fanout"),
		ClientName:   md.String("clientName", ""),
	}
	if c.URL == "" {
		c.URL = md.String("host", "")
	}
	if c.URL == "" {
		u := url.URL{
			Scheme: md.String("protocol", "amqp"),
			Host:   md.String("hostname", "127.0.0.1:5672"),
			User:   url.UserPassword(md.String("username", "guest"), md.String("password", "guest")),
			Path:   "/",
		}
		c.URL = u.String()
	}
	var err error
	if c.Durable, err = md.Bool("durable", true); err != nil {
		return c, err
	}
	if c.DeletedWhenUnused, err = md.Bool("deletedWhenUnused", false); err != nil {
		return c, err
	}
	mode, err := md.Int("deliveryMode", 2)
	if err != nil {
		return c, err
	}
	if mode < 0 || mode > 2 {
		return c, fmt.Errorf("component %q: metadata \"deliveryMode\": %d is not 0, 1 or 2", md.Name, mode)
	}
	c.DeliveryMode = uint8(mode)
	if c.PrefetchCount, err = md.Int("prefetchCount", 0); err != nil {
		return c, err
	}
	switch v := md.String("concurrency", ""); v {
	case "", "parallel":
		c.Concurrency = pubsub.DefaultConcurrency
	case "single":
		c.Concurrency = 1
	default:
		if c.Concurrency, err = md.Int("concurrency", 0); err != nil || c.Concurrency < 1 {
			return c, fmt.Errorf("component %q: metadata \"concurrency\": %q is not single, parallel or a positive number", md.Name, v)
		}
	}
	if c.ReconnectWait, err = md.Duration("reconnectWaitSeconds", 3*time.Second); err != nil {
		return c, err
	}
	if c.ExchangeKind != "fanout" && c.ExchangeKind != "topic" {
		return c, fmt.Errorf("component %q: metadata \"exchangeKind\": %q is not fanout or topic", md.Name, c.ExchangeKind)
	}
	if c.ConsumerID == "" {
		return c, fmt.Errorf("component %q: consumerID is empty and there is no app ID; set consumerID", md.Name)
	}
	return c, nil
}
