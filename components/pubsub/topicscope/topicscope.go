// Package topicscope is Dapr's pub/sub topic scoping: which app may publish
// or subscribe to which topic of one pub/sub component, as written in the
// component's metadata (Dapr docs: "Scope Pub/sub topic access").
//
//	publishingScopes:   app1=topic1;app2=topic2,topic3;app3=
//	subscriptionScopes: app1=topic1;app2=topic2
//	allowedTopics:      topic1,topic2,topic3
//	protectedTopics:    topic3
//
// The decision is Dapr's:
//
//   - allowedTopics, when set, is the whole list of topics any app may use;
//     a topic outside it is refused to every app, whatever the scopes say.
//   - An app listed in publishingScopes (subscriptionScopes) may publish
//     (subscribe) to the topics after its "=" and no others; "app3=" lists
//     none. An app not listed is not restricted by that field.
//   - A topic in protectedTopics may be used only by the apps the scopes
//     grant it to, so an app not listed may not use it.
//
// Parse reads the four fields; Scopes.CanPublish and Scopes.CanSubscribe
// decide, and Scopes.Check says why not. Table gives a components.Manager a
// pub/sub Kind that parses the fields at Init, keeps them away from the
// broker, and remembers them per instance for the pub/sub API.
//
// The package imports only components and components/pubsub.
package topicscope

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/tandemrun/tandem/components"
)

// The component metadata fields, as Dapr names them (matched without
// regard to case).
const (
	PublishingScopes   = "publishingScopes"
	SubscriptionScopes = "subscriptionScopes"
	AllowedTopics      = "allowedTopics"
	ProtectedTopics    = "protectedTopics"
)

var fields = [...]string{PublishingScopes, SubscriptionScopes, AllowedTopics, ProtectedTopics}

// IsField reports whether a metadata name is one of the scoping fields.
func IsField(name string) bool {
	for _, f := range fields {
		if strings.EqualFold(name, f) {
			return true
		}
	}
	return false
}

// Strip returns props without the scoping fields, for the broker. props is
// returned as is when it has none; otherwise it is copied, never changed.
func Strip(props map[string]string) map[string]string {
	n := 0
	for k := range props {
		if IsField(k) {
			n++
		}
	}
	if n == 0 {
		return props
	}
	out := make(map[string]string, len(props)-n)
	for k, v := range props {
		if !IsField(k) {
			out[k] = v
		}
	}
	return out
}

// Op is what an app wants to do with a topic.
type Op int

const (
	// Publish is publishing (and dead-lettering) to the topic.
	Publish Op = iota
	// Subscribe is any kind of subscription to the topic.
	Subscribe
)

func (o Op) String() string {
	if o == Subscribe {
		return "subscribe"
	}
	return "publish"
}

// field is the scopes field that grants o.
func (o Op) field() string {
	if o == Subscribe {
		return SubscriptionScopes
	}
	return PublishingScopes
}

type set map[string]struct{}

func (s set) has(topic string) bool {
	_, ok := s[topic]
	return ok
}

// Scopes are the topic scopes of one pub/sub component. A nil *Scopes
// allows everything (the component sets none of the fields).
type Scopes struct {
	component string
	// publish and subscribe map a listed app ID to the topics granted to
	// it; nil when the field is not set.
	publish, subscribe map[string]set
	// allowed is nil when allowedTopics is not set.
	allowed   set
	protected set
	ignored   []string
}

// Parse reads the scoping fields of a component's metadata. It returns nil
// when none is set. Like Dapr it never fails: white space is removed,
// empty topic names are skipped, and a scopes entry without "=" is
// ignored; Ignored lists what was ignored, for a warning.
func Parse(md components.Metadata) *Scopes {
	s := &Scopes{component: md.Name}
	found := false
	if v, ok := md.Get(PublishingScopes); ok && v != "" {
		s.publish, found = s.parseApps(PublishingScopes, v), true
	}
	if v, ok := md.Get(SubscriptionScopes); ok && v != "" {
		s.subscribe, found = s.parseApps(SubscriptionScopes, v), true
	}
	if v, ok := md.Get(AllowedTopics); ok && v != "" {
		// Set but naming no topic (" ", ","): Dapr then allows none.
		s.allowed, found = topics(v), true
		if len(s.allowed) == 0 {
			s.ignored = append(s.ignored, fmt.Sprintf("%s %q names no topic, so no topic of this pub/sub may be used: list the topics or remove the field", AllowedTopics, v))
		}
	}
	if v, ok := md.Get(ProtectedTopics); ok && v != "" {
		s.protected, found = topics(v), true
	}
	if !found {
		return nil
	}
	return s
}

// parseApps reads "app1=t1,t2;app2=;..." into app -> topics. An app listed
// more than once gets the topics of all its entries.
func (s *Scopes) parseApps(field, v string) map[string]set {
	out := map[string]set{}
	for entry := range strings.SplitSeq(noSpace(v), ";") {
		if entry == "" {
			continue
		}
		app, list, ok := strings.Cut(entry, "=")
		if !ok {
			s.ignored = append(s.ignored, fmt.Sprintf("%s entry %q has no \"=\" and is ignored, so that app is not restricted: write %s=topic1,topic2 (or %s= for no topic)", field, entry, entry, entry))
			continue
		}
		if app == "" {
			s.ignored = append(s.ignored, fmt.Sprintf("%s entry %q names no app and is ignored: write appID=topic1,topic2", field, entry))
			continue
		}
		if head, _, more := strings.Cut(list, "="); more {
			// Dapr reads only up to a second "=".
			s.ignored = append(s.ignored, fmt.Sprintf("%s entry %q has a second \"=\"; only %q counts: separate apps with \";\"", field, entry, head))
			list = head
		}
		granted := out[app]
		if granted == nil {
			granted = set{}
			out[app] = granted
		}
		for t := range topics(list) {
			granted[t] = struct{}{}
		}
	}
	return out
}

// topics reads a comma-separated list, white space removed, empty names
// skipped.
func topics(v string) set {
	out := set{}
	for t := range strings.SplitSeq(noSpace(v), ",") {
		if t != "" {
			out[t] = struct{}{}
		}
	}
	return out
}

// noSpace removes all white space (Dapr removes spaces; tabs and newlines
// from a multi-line YAML value go too).
func noSpace(v string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, v)
}

// Ignored lists the parts of the fields that were ignored and why.
func (s *Scopes) Ignored() []string {
	if s == nil {
		return nil
	}
	return s.ignored
}

// CanPublish reports whether appID may publish to topic.
func (s *Scopes) CanPublish(appID, topic string) bool { return s.Check(Publish, appID, topic) == nil }

// CanSubscribe reports whether appID may subscribe to topic.
func (s *Scopes) CanSubscribe(appID, topic string) bool {
	return s.Check(Subscribe, appID, topic) == nil
}

// Check returns nil when appID may do op on topic, else a *DeniedError
// naming the field to change.
func (s *Scopes) Check(op Op, appID, topic string) error {
	if s == nil {
		return nil
	}
	deny := func(field, why string) error {
		return &DeniedError{Op: op, Component: s.component, AppID: appID, Topic: topic, Field: field, why: why}
	}
	if s.allowed != nil && !s.allowed.has(topic) {
		return deny(AllowedTopics, fmt.Sprintf("the topic is not in %s of pub/sub %s: add it there to let apps use it", AllowedTopics, s.component))
	}
	scopes := s.publish
	if op == Subscribe {
		scopes = s.subscribe
	}
	granted, listed := scopes[appID]
	protected := s.protected.has(topic)
	switch {
	case listed && granted.has(topic):
		return nil
	case listed:
		return deny(op.field(), fmt.Sprintf("%s of pub/sub %s lists the topics app %s may %s to and this is not one of them: add it to the app's entry (%s=...,%s)",
			op.field(), s.component, appID, op, appID, topic))
	case protected:
		return deny(op.field(), fmt.Sprintf("the topic is in %s of pub/sub %s: grant it to the app in %s (%s=%s)",
			ProtectedTopics, s.component, op.field(), appID, topic))
	}
	return nil
}

// DeniedError says that an app may not publish or subscribe to a topic,
// and which metadata field of the component to change.
type DeniedError struct {
	Op        Op
	Component string
	AppID     string
	Topic     string
	// Field is the metadata field that decided: AllowedTopics,
	// PublishingScopes or SubscriptionScopes.
	Field string
	why   string
}

func (e *DeniedError) Error() string {
	return fmt.Sprintf("app %s may not %s to topic %s: %s", e.AppID, e.Op, e.Topic, e.why)
}

// Reason is why, with the field to change, without naming app and topic
// again.
func (e *DeniedError) Reason() string { return e.why }
