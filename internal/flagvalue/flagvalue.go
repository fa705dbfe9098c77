// Package flagvalue holds the flag.Value kinds that the control-plane
// binaries share with Dapr's (pflag-based) command lines.
package flagvalue

import (
	"flag"
	"strings"
)

// List is a comma-separated list flag that may also be repeated; the first
// use replaces the default, as pflag's StringSlice does.
type List struct {
	v   *[]string
	set bool
}

// NewList returns a List writing into p, whose current value is the
// default.
func NewList(p *[]string) *List { return &List{v: p} }

var _ flag.Value = (*List)(nil)

func (l *List) String() string {
	if l == nil || l.v == nil {
		return ""
	}
	return strings.Join(*l.v, ",")
}

// Set adds the comma-separated, non-blank items of v.
func (l *List) Set(v string) error {
	if !l.set {
		*l.v, l.set = nil, true
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(p); p != "" {
			*l.v = append(*l.v, p)
		}
	}
	return nil
}
