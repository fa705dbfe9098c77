// Package loadreport is the sidecar's load report: per subscription the
// messages waiting (the broker's backlog) or in flight, the delivery rate
// and the age of the oldest waiting message, and the app's in-flight
// invocations and active actors. The sidecar serves it as JSON in its
// metadata API (extended[ExtendedKey]) and as Prometheus gauges; the KEDA
// scaler (scaler/) reads it from there. Both sides use these types, so the
// format has one definition.
//
// It imports nothing of ours.
package loadreport

import (
	"encoding/json"
	"fmt"
)

// ExtendedKey is the metadata API's extended entry holding the report
// (GET /v1.0/metadata: "extended": {"tandem.load": "<Report as JSON>"}).
const ExtendedKey = "tandem.load"

// Report is one sidecar's load.
type Report struct {
	AppID     string `json:"appId"`
	Namespace string `json:"namespace,omitempty"`
	// InvocationsInFlight counts service invocations of this app being
	// served (from the call reaching the sidecar until the app's answer
	// has been read).
	InvocationsInFlight int64 `json:"invocationsInFlight"`
	// ActiveActors counts the actors active in this sidecar, all types.
	ActiveActors  int64          `json:"activeActors"`
	Subscriptions []Subscription `json:"subscriptions"`
}

// Subscription is the load of one subscription (pub/sub component and
// topic).
type Subscription struct {
	PubsubName string `json:"pubsubName"`
	Topic      string `json:"topic"`
	// Backlog is the broker's count of messages not yet delivered to the
	// app's consumer group, Unacked of those delivered and not acked
	// (which includes InFlight). Both are the group's, the same in every
	// replica, and absent when the broker cannot tell (no
	// pubsub.Backlogger) or could not be asked (BacklogError).
	Backlog *int64 `json:"backlog,omitempty"`
	Unacked *int64 `json:"unacked,omitempty"`
	// BacklogError says why the broker could not be asked.
	BacklogError string `json:"backlogError,omitempty"`
	// InFlight counts this sidecar's deliveries to the app not finished.
	InFlight int64 `json:"inFlight"`
	// Delivered counts deliveries finished since the subscription started;
	// DeliveryRate is their rate per second over the last minute.
	Delivered    uint64  `json:"delivered"`
	DeliveryRate float64 `json:"deliveryRate"`
	// OldestPendingAgeSeconds is the age of the oldest message the broker
	// holds unacknowledged for the group; 0 when there is none or the
	// broker cannot tell.
	OldestPendingAgeSeconds float64 `json:"oldestPendingAgeSeconds"`
}

// BrokerKnows reports whether the broker's backlog figures are present.
func (s Subscription) BrokerKnows() bool { return s.Backlog != nil && s.Unacked != nil }

// Pending is what the subscription still has to settle: the broker's
// backlog plus unacked messages when the broker tells, else this
// sidecar's in-flight deliveries.
func (s Subscription) Pending() int64 {
	if s.BrokerKnows() {
		return *s.Backlog + *s.Unacked
	}
	return s.InFlight
}

// Marshal encodes r for the metadata API.
func (r Report) Marshal() string {
	b, err := json.Marshal(r)
	if err != nil {
		// Only plain fields: cannot fail.
		panic(fmt.Sprintf("loadreport: %v", err))
	}
	return string(b)
}

// Parse decodes a report from the metadata API's extended entry.
func Parse(s string) (Report, error) {
	var r Report
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return Report{}, fmt.Errorf("load report %q: %w (is the sidecar a Tandem sidecar of the same version?)", ExtendedKey, err)
	}
	if r.AppID == "" {
		return Report{}, fmt.Errorf("load report %q: no appId", ExtendedKey)
	}
	for i, sub := range r.Subscriptions {
		if sub.PubsubName == "" || sub.Topic == "" {
			return Report{}, fmt.Errorf("load report %q: subscription %d has no pubsubName or topic", ExtendedKey, i)
		}
	}
	return r, nil
}
