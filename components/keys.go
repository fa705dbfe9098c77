package components

import (
	"strings"

	"go.yaml.in/yaml/v3"
)

// keySchema lists the field names of one YAML mapping (canonical
// spelling) and, for a field holding a mapping or a list of mappings, the
// schema of that mapping. A field whose value is the user's own map (a
// Subscription's spec.metadata) has a nil schema: its keys are left as
// written.
type keySchema map[string]keySchema

// Dapr reads resources through JSON decoding, which matches field names
// regardless of case ("Kind:", "pubsubName:", "APIVersion:"). These are the
// fields Tandem reads, per resource kind.
var (
	headerKeys = keySchema{
		"apiVersion": nil, "kind": nil, "scopes": nil, "spec": nil,
		"metadata": {"name": nil, "namespace": nil},
		"auth":     {"secretStore": nil},
	}
	componentSpecKeys = keySchema{
		"type": nil, "version": nil, "initTimeout": nil, "ignoreErrors": nil,
		"metadata": {"name": nil, "value": nil, "envRef": nil, "secretKeyRef": {"name": nil, "key": nil}},
	}
	subscriptionSpecKeys = keySchema{
		"topic": nil, "pubsubname": nil, "route": nil, "deadLetterTopic": nil, "metadata": nil,
		"routes":        {"default": nil, "rules": {"match": nil, "path": nil}},
		"bulkSubscribe": {"enabled": nil, "maxMessagesCount": nil, "maxAwaitDurationMs": nil},
	}
)

// canonicalKeys rewrites, in place, the keys of mapping n (or of each
// mapping in sequence n) that match a field of schema but for case to the
// field's canonical spelling, recursively. A key spelled exactly right is
// kept over one that matches only without case.
func canonicalKeys(n *yaml.Node, schema keySchema) {
	if n == nil || schema == nil {
		return
	}
	switch n.Kind {
	case yaml.SequenceNode:
		for _, c := range n.Content {
			canonicalKeys(c, schema)
		}
		return
	case yaml.MappingNode:
	default:
		return
	}
	exact := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		exact[n.Content[i].Value] = true
	}
	defer dropDuplicateKeys(n)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			continue
		}
		for field, sub := range schema {
			if !strings.EqualFold(k.Value, field) {
				continue
			}
			if k.Value != field && !exact[field] {
				k.Value = field
			}
			if k.Value == field {
				canonicalKeys(n.Content[i+1], sub)
			}
			break
		}
	}
}

// dedupeKeys drops, in every mapping under n, a key that appears again
// later in the same mapping: the last one wins, as in Dapr's YAML reading
// (a manifest with apiVersion written twice loads).
func dedupeKeys(n *yaml.Node) {
	if n == nil {
		return
	}
	if n.Kind == yaml.MappingNode {
		dropDuplicateKeys(n)
	}
	for _, c := range n.Content {
		dedupeKeys(c)
	}
}

// dropDuplicateKeys keeps the last of the entries of mapping n that share
// a scalar key.
func dropDuplicateKeys(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		return
	}
	last := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := n.Content[i]; k.Kind == yaml.ScalarNode {
			last[k.Value] = i
		}
	}
	if len(last) == len(n.Content)/2 {
		return
	}
	out := n.Content[:0]
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind == yaml.ScalarNode && last[k.Value] != i {
			continue
		}
		out = append(out, k, n.Content[i+1])
	}
	n.Content = out
}
