package components

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

type rawSubscription struct {
	Spec struct {
		Topic      string `yaml:"topic"`
		PubsubName string `yaml:"pubsubname"`
		Route      string `yaml:"route"` // v1alpha1
		Routes     struct {
			Rules []struct {
				Match string `yaml:"match"`
				Path  string `yaml:"path"`
			} `yaml:"rules"`
			Default string `yaml:"default"`
		} `yaml:"routes"` // v2alpha1
		DeadLetterTopic string            `yaml:"deadLetterTopic"`
		Metadata        map[string]string `yaml:"metadata"`
		BulkSubscribe   struct {
			Enabled            bool  `yaml:"enabled"`
			MaxMessagesCount   int32 `yaml:"maxMessagesCount"`
			MaxAwaitDurationMs int32 `yaml:"maxAwaitDurationMs"`
		} `yaml:"bulkSubscribe"`
	} `yaml:"spec"`
}

func parseSubscription(root *yaml.Node, h rawHeader, source string) (Subscription, []*ResourceError) {
	var errs []*ResourceError
	add := func(field string, err error) {
		errs = append(errs, &ResourceError{File: source, Line: root.Line, Kind: KindSubscription, Name: h.Metadata.Name, Field: field, Err: err})
	}
	canonicalKeys(mapValue(root, "spec"), subscriptionSpecKeys)
	var r rawSubscription
	if err := root.Decode(&r); err != nil {
		add("", typeErr(err))
		return Subscription{}, errs
	}
	sp := r.Spec
	s := Subscription{
		APIVersion:      h.APIVersion,
		Name:            h.Metadata.Name,
		Namespace:       h.Metadata.Namespace,
		PubsubName:      strings.TrimSpace(sp.PubsubName),
		Topic:           strings.TrimSpace(sp.Topic),
		DeadLetterTopic: strings.TrimSpace(sp.DeadLetterTopic),
		Metadata:        sp.Metadata,
		BulkSubscribe:   BulkSubscribe(sp.BulkSubscribe),
		Scopes:          h.Scopes,
		Source:          source,
		Line:            root.Line,
	}
	if s.Name == "" {
		add("metadata.name", errors.New("missing; give the subscription a name"))
	}
	if s.PubsubName == "" {
		add("spec.pubsubname", errors.New("missing; name the pub/sub component to subscribe through"))
	}
	if s.Topic == "" {
		add("spec.topic", errors.New("missing; name the topic to subscribe to"))
	}
	switch h.APIVersion {
	case APIVersionV2Alpha1:
		if sp.Route != "" {
			add("spec.route", fmt.Errorf("is a %s field; in %s write routes.default: %s", APIVersionV1Alpha1, APIVersionV2Alpha1, sp.Route))
		}
		s.Routes.Default = strings.TrimSpace(sp.Routes.Default)
		for i, rule := range sp.Routes.Rules {
			if strings.TrimSpace(rule.Path) == "" {
				add(fmt.Sprintf("spec.routes.rules[%d].path", i), errors.New("missing; every rule needs the path to deliver to"))
			}
			s.Routes.Rules = append(s.Routes.Rules, Rule{Match: strings.TrimSpace(rule.Match), Path: strings.TrimSpace(rule.Path)})
		}
		if s.Routes.Default == "" && len(s.Routes.Rules) == 0 {
			add("spec.routes", errors.New("missing; add routes.default: /path (and optionally routes.rules)"))
		}
	case APIVersionV1Alpha1:
		s.Routes.Default = strings.TrimSpace(sp.Route)
		if len(sp.Routes.Rules) > 0 || sp.Routes.Default != "" {
			add("spec.routes", fmt.Errorf("needs apiVersion: %s; in %s write spec.route", APIVersionV2Alpha1, APIVersionV1Alpha1))
		} else if s.Routes.Default == "" {
			add("spec.route", errors.New("missing; add route: /path"))
		}
	case "":
		add("apiVersion", fmt.Errorf("missing; add apiVersion: %s", APIVersionV2Alpha1))
	default:
		add("apiVersion", fmt.Errorf("%q is not supported for a Subscription; use %s (or the older %s)", h.APIVersion, APIVersionV2Alpha1, APIVersionV1Alpha1))
	}
	if s.BulkSubscribe.MaxMessagesCount < 0 {
		add("spec.bulkSubscribe.maxMessagesCount", errors.New("must not be negative"))
	}
	if s.BulkSubscribe.MaxAwaitDurationMs < 0 {
		add("spec.bulkSubscribe.maxAwaitDurationMs", errors.New("must not be negative"))
	}
	return s, errs
}
