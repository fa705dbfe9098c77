package routeralias

import (
	"fmt"
	"regexp"
	"strings"
)

// route is one compiled path template: "/v1.0/hello/{id}/info" or
// "/items/{id:[0-9]+}", as gorilla/mux (which Dapr uses) reads them: a
// variable without a pattern matches one path segment, and the template
// matches the whole path.
type route struct {
	template string
	target   string
	re       *regexp.Regexp
	vars     []string // variable names, in the order of re's groups
}

// compile parses a path template.
func compile(template, target string) (*route, error) {
	if template == "" {
		return nil, fmt.Errorf("route %q: the path must not be empty", template)
	}
	if target == "" {
		return nil, fmt.Errorf("route %q: the target path must not be empty", template)
	}
	var pat strings.Builder
	var vars []string
	pat.WriteString("^")
	rest := template
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			if strings.IndexByte(rest, '}') >= 0 {
				return nil, fmt.Errorf("route %q: unbalanced braces", template)
			}
			pat.WriteString(regexp.QuoteMeta(rest))
			break
		}
		lit := rest[:open]
		if strings.IndexByte(lit, '}') >= 0 {
			return nil, fmt.Errorf("route %q: unbalanced braces", template)
		}
		pat.WriteString(regexp.QuoteMeta(lit))
		// The variable ends at the brace that balances the opening one
		// (patterns may hold braces: {id:[0-9]{3}}).
		depth, end := 0, -1
		for i := open; i < len(rest); i++ {
			switch rest[i] {
			case '{':
				depth++
			case '}':
				depth--
			}
			if depth == 0 {
				end = i
				break
			}
		}
		if end < 0 {
			return nil, fmt.Errorf("route %q: unbalanced braces", template)
		}
		name, pattern, hasPattern := strings.Cut(rest[open+1:end], ":")
		if name == "" {
			return nil, fmt.Errorf("route %q: a variable has no name", template)
		}
		if !hasPattern {
			pattern = "[^/]+"
		} else if pattern == "" {
			return nil, fmt.Errorf("route %q: variable %s has an empty pattern", template, name)
		}
		if strings.HasPrefix(pattern, "^") || strings.HasSuffix(pattern, "$") {
			return nil, fmt.Errorf("route %q: variable %s: the pattern must not be anchored (^ or $)", template, name)
		}
		if _, err := regexp.Compile(pattern); err != nil {
			return nil, fmt.Errorf("route %q: variable %s: %w", template, name, err)
		}
		fmt.Fprintf(&pat, "(%s)", pattern)
		vars = append(vars, name)
		rest = rest[end+1:]
	}
	pat.WriteString("$")
	re, err := regexp.Compile(pat.String())
	if err != nil {
		return nil, fmt.Errorf("route %q: %w", template, err)
	}
	if re.NumSubexp() != len(vars) {
		return nil, fmt.Errorf("route %q: a variable's pattern must not hold capturing groups: use (?:...)", template)
	}
	return &route{template: template, target: target, re: re, vars: vars}, nil
}

// match returns the variables of path, and whether it matches.
func (r *route) match(path string) (map[string]string, bool) {
	if len(r.vars) == 0 {
		return nil, path == r.template
	}
	m := r.re.FindStringSubmatch(path)
	if m == nil {
		return nil, false
	}
	vars := make(map[string]string, len(r.vars))
	for i, v := range r.vars {
		vars[v] = m[i+1]
	}
	return vars, true
}
