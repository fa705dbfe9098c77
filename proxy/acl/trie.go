package acl

import "strings"

// Path patterns, as Dapr writes them.
const (
	oneSegment  = "/*"
	anySegments = "/**"
)

// operation is the compiled form of one operations[] entry.
type operation struct {
	name   string            // normalised pattern, for messages
	action string            // gRPC apps: the action
	verbs  map[string]string // HTTP apps: verb (or "*") -> action
}

// node is one path segment ("/name", with its leading slash) of a trie of
// operation patterns. Children keep insertion order: the first matching
// child wins, as in Dapr.
type node struct {
	seg      string
	op       *operation
	children []*node
}

// put adds a pattern; the first pattern put for a path is kept.
func (n *node) put(pattern string, op *operation) {
	segs := strings.Split(pattern, "/")[1:]
	cur := n
	for i, s := range segs {
		s = "/" + s
		last := i == len(segs)-1
		var next *node
		for _, c := range cur.children {
			if c.seg == s {
				next = c
				break
			}
		}
		if next == nil {
			next = &node{seg: s}
			cur.children = append(cur.children, next)
		}
		if last {
			if next.op == nil {
				next.op = op
			}
			return
		}
		cur = next
	}
}

// search returns the operation whose pattern matches path, or nil.
func (n *node) search(path string) *operation {
	cur := n
	rest := path[1:] // path starts with "/"
	for {
		seg, tail, more := strings.Cut(rest, "/")
		end := !more
		cur = cur.child("/"+seg, end)
		if cur == nil {
			return nil
		}
		if cur.op != nil {
			// "/a/*" matched a middle segment: keep walking below it.
			if !end && strings.HasSuffix(cur.seg, oneSegment) && !strings.HasSuffix(cur.seg, anySegments) {
				rest = tail
				continue
			}
			return cur.op
		}
		if end {
			// "/a/*" also matches "/a".
			if w := cur.child(oneSegment, true); w != nil && w.op != nil {
				return w.op
			}
			return nil
		}
		rest = tail
	}
}

// child finds the first child matching segment s; "/*" matches only the
// last segment, "/**" any, other patterns by glob.
func (n *node) child(s string, end bool) *node {
	for _, c := range n.children {
		switch {
		case c.seg == s:
			return c
		case c.seg == oneSegment:
			if end {
				return c
			}
			continue
		case c.seg == anySegments:
			return c
		case glob(c.seg, s):
			return c
		}
	}
	return nil
}

// glob reports whether s matches pattern, where '*' stands for any run of
// characters (possibly empty) and every other byte for itself.
func glob(pattern, s string) bool {
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case p < len(pattern) && pattern[p] == s[i]:
			p++
			i++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
