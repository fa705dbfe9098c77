package resiliency

import (
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// unknownFields reports mapping keys that no field of Resiliency accepts,
// so a typo such as "maxRetires" is not silently ignored.
func unknownFields(file string, doc *yaml.Node) []Warning {
	var out []Warning
	// Aliases can make a small document a huge tree (billion laughs):
	// bound the nodes visited, not just the depth.
	budget := 10000
	var walk func(n *yaml.Node, t reflect.Type, path string, depth int)
	walk = func(n *yaml.Node, t reflect.Type, path string, depth int) {
		if n == nil || depth > 32 || budget <= 0 {
			return
		}
		budget--
		switch n.Kind {
		case yaml.DocumentNode:
			for _, c := range n.Content {
				walk(c, t, path, depth+1)
			}
			return
		case yaml.AliasNode:
			walk(n.Alias, t, path, depth+1)
			return
		}
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		switch t.Kind() {
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), depth+1)
			}
		case reflect.Struct:
			fields, inline := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				p := join(path, k.Value)
				if ft, ok := fields[k.Value]; ok {
					walk(v, ft, p, depth+1)
				} else if !inline && k.Value != "<<" {
					out = append(out, Warning{File: file, Line: k.Line, Path: p,
						Message: "unknown field, ignored (Dapr ignores it too); check its spelling"})
				}
			}
		}
	}
	walk(doc, reflect.TypeFor[Resiliency](), "", 0)
	return out
}

func yamlFields(t reflect.Type) (map[string]reflect.Type, bool) {
	fields := map[string]reflect.Type{}
	inline := false
	for f := range t.Fields() {
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
		case strings.Contains(opts, "inline"):
			inline = true
		case name != "":
			fields[name] = f.Type
		}
	}
	return fields, inline
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
