package config

import (
	"fmt"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// maxWalkDepth bounds recursion through aliases and deep documents.
const maxWalkDepth = 64

// walker finds mapping keys that no struct field accepts. yaml.v3's
// KnownFields mode would stop at the first one with a Go type name in the
// message; this reports all of them with the YAML path and a suggestion.
type walker struct {
	source   string
	warnings []Warning
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string, depth int) {
	if n == nil || depth > maxWalkDepth {
		return
	}
	if n.Kind == yaml.AliasNode {
		w.walk(n.Alias, t, path, depth+1)
		return
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(reflect.TypeFor[yaml.Unmarshaler]()) {
		return // the type checks its own shape
	}
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind == yaml.MappingNode {
			w.walkStruct(n, t, path, depth)
		}
	case reflect.Slice:
		if n.Kind == yaml.SequenceNode {
			for i, item := range n.Content {
				w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), depth+1)
			}
		}
	default:
		// maps, interfaces and scalars accept anything yaml.v3 decoded.
	}
}

func (w *walker) walkStruct(n *yaml.Node, t reflect.Type, path string, depth int) {
	fields, inlineMap := structFields(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "<<" { // merge key: its mappings belong to this struct
			w.walk(v, t, path, depth+1)
			if v.Kind == yaml.SequenceNode {
				for _, m := range v.Content {
					w.walk(m, t, path, depth+1)
				}
			}
			continue
		}
		p := joinPath(path, k.Value)
		if ft, ok := fields[k.Value]; ok {
			w.walk(v, ft, p, depth+1)
			continue
		}
		if inlineMap {
			continue
		}
		msg := "unknown field (Dapr ignores it, so does Tandem)"
		if s := suggest(k.Value, fields); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		w.warnings = append(w.warnings, Warning{Source: w.source, Line: k.Line, Path: p, Message: msg})
	}
}

// structFields maps YAML keys to field types, following inline structs.
func structFields(t reflect.Type) (map[string]reflect.Type, bool) {
	fields := map[string]reflect.Type{}
	inlineMap := false
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(opts, "inline") {
			if f.Type.Kind() == reflect.Map {
				inlineMap = true
				continue
			}
			sub, subMap := structFields(f.Type)
			for k, v := range sub {
				fields[k] = v
			}
			inlineMap = inlineMap || subMap
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		fields[name] = f.Type
	}
	return fields, inlineMap
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// suggest returns a known key that differs from k only in case, dashes or
// underscores.
func suggest(k string, fields map[string]reflect.Type) string {
	norm := func(s string) string {
		return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(s))
	}
	nk := norm(k)
	for name := range fields {
		if norm(name) == nk {
			return name
		}
	}
	return ""
}
