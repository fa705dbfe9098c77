package resiliency

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Counts are the circuit breaker counters a trip expression can read
// (gobreaker's Counts, under the names Dapr exposes to CEL).
type Counts struct {
	Requests             uint32
	TotalSuccesses       uint32
	TotalFailures        uint32
	ConsecutiveSuccesses uint32
	ConsecutiveFailures  uint32
}

// Trip is a compiled trip expression such as "consecutiveFailures > 5" or
// "requests >= 10 && totalFailures / requests > 0.5".
//
// The grammar is the subset of CEL that trip expressions use: numbers, the
// five counter names, + - * / %, comparisons (> >= < <= == !=), ! && ||,
// true/false and parentheses. Arithmetic is done in float64, so
// totalFailures / requests is a ratio (CEL would divide integers); dividing
// by zero makes the expression false, as an evaluation error does in Dapr.
type Trip struct {
	src  string
	root node
}

// DefaultTrip is Dapr's (and gobreaker's) default trip expression.
const DefaultTrip = "consecutiveFailures > 5"

// ParseTrip compiles a trip expression; the result must be boolean.
func ParseTrip(src string) (*Trip, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	root, err := p.or(0)
	if err != nil {
		return nil, err
	}
	if p.pos < len(p.toks) {
		return nil, fmt.Errorf("unexpected %q at offset %d", p.toks[p.pos].text, p.toks[p.pos].off)
	}
	if !root.isBool() {
		return nil, errors.New("expression is a number, not a condition; compare it, e.g. consecutiveFailures > 5")
	}
	return &Trip{src: src, root: root}, nil
}

// String returns the source text.
func (t *Trip) String() string { return t.src }

// Eval reports whether the breaker should open; evaluation errors (division
// by zero) count as false.
func (t *Trip) Eval(c Counts) bool {
	v, err := t.root.eval(&c)
	return err == nil && v.b
}

var tripVars = map[string]func(*Counts) float64{
	"requests":             func(c *Counts) float64 { return float64(c.Requests) },
	"totalSuccesses":       func(c *Counts) float64 { return float64(c.TotalSuccesses) },
	"totalFailures":        func(c *Counts) float64 { return float64(c.TotalFailures) },
	"consecutiveSuccesses": func(c *Counts) float64 { return float64(c.ConsecutiveSuccesses) },
	"consecutiveFailures":  func(c *Counts) float64 { return float64(c.ConsecutiveFailures) },
}

type token struct {
	text string
	off  int
	num  bool
}

func lex(s string) ([]token, error) {
	const maxTokens = 256 // trip expressions are one line; this bounds work
	var toks []token
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		case c >= '0' && c <= '9' || c == '.':
			j := i
			for j < len(s) && (s[j] >= '0' && s[j] <= '9' || s[j] == '.') {
				j++
			}
			toks = append(toks, token{text: s[i:j], off: i, num: true})
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] >= 'a' && s[j] <= 'z' || s[j] >= 'A' && s[j] <= 'Z' || s[j] >= '0' && s[j] <= '9') {
				j++
			}
			toks = append(toks, token{text: s[i:j], off: i})
			i = j
		default:
			op := ""
			for _, o := range []string{"&&", "||", ">=", "<=", "==", "!=", ">", "<", "!", "+", "-", "*", "/", "%", "(", ")"} {
				if strings.HasPrefix(s[i:], o) {
					op = o
					break
				}
			}
			if op == "" {
				return nil, fmt.Errorf("unexpected character %q at offset %d", c, i)
			}
			toks = append(toks, token{text: op, off: i})
			i += len(op)
		}
		if len(toks) > maxTokens {
			return nil, fmt.Errorf("expression longer than %d tokens", maxTokens)
		}
	}
	if len(toks) == 0 {
		return nil, errors.New("empty expression")
	}
	return toks, nil
}

type parser struct {
	toks []token
	pos  int
}

const maxDepth = 64

func (p *parser) peek() string {
	if p.pos < len(p.toks) {
		return p.toks[p.pos].text
	}
	return ""
}

func (p *parser) binary(depth int, ops []string, next func(int) (node, error), wantBool bool) (node, error) {
	l, err := next(depth)
	if err != nil {
		return nil, err
	}
	for {
		op := p.peek()
		if !slices.Contains(ops, op) {
			return l, nil
		}
		p.pos++
		r, err := next(depth)
		if err != nil {
			return nil, err
		}
		if wantBool && (!l.isBool() || !r.isBool()) {
			return nil, fmt.Errorf("%q needs conditions on both sides", op)
		}
		if !wantBool && (l.isBool() || r.isBool()) {
			return nil, fmt.Errorf("%q needs numbers on both sides", op)
		}
		l = &binNode{op: op, l: l, r: r}
	}
}

func (p *parser) or(d int) (node, error) {
	if d > maxDepth {
		return nil, errors.New("expression nested too deeply")
	}
	return p.binary(d, []string{"||"}, p.and, true)
}

func (p *parser) and(d int) (node, error) { return p.binary(d, []string{"&&"}, p.unary, true) }

func (p *parser) unary(d int) (node, error) {
	if p.peek() == "!" {
		p.pos++
		if d > maxDepth {
			return nil, errors.New("expression nested too deeply")
		}
		x, err := p.unary(d + 1)
		if err != nil {
			return nil, err
		}
		if !x.isBool() {
			return nil, errors.New(`"!" needs a condition`)
		}
		return &notNode{x: x}, nil
	}
	return p.cmp(d)
}

func (p *parser) cmp(d int) (node, error) {
	l, err := p.sum(d)
	if err != nil {
		return nil, err
	}
	op := p.peek()
	switch op {
	case ">", ">=", "<", "<=", "==", "!=":
	default:
		return l, nil
	}
	p.pos++
	r, err := p.sum(d)
	if err != nil {
		return nil, err
	}
	if l.isBool() != r.isBool() || (l.isBool() && op != "==" && op != "!=") {
		return nil, fmt.Errorf("cannot compare with %q: mixed conditions and numbers", op)
	}
	return &binNode{op: op, l: l, r: r, cmp: true}, nil
}

func (p *parser) sum(d int) (node, error) { return p.binary(d, []string{"+", "-"}, p.prod, false) }

func (p *parser) prod(d int) (node, error) {
	return p.binary(d, []string{"*", "/", "%"}, p.atom, false)
}

func (p *parser) atom(d int) (node, error) {
	if p.pos >= len(p.toks) {
		return nil, errors.New("expression ends early")
	}
	t := p.toks[p.pos]
	p.pos++
	switch {
	case t.num:
		f, err := strconv.ParseFloat(t.text, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q at offset %d", t.text, t.off)
		}
		return numNode(f), nil
	case t.text == "true" || t.text == "false":
		return boolNode(t.text == "true"), nil
	case t.text == "(":
		if d > maxDepth {
			return nil, errors.New("expression nested too deeply")
		}
		x, err := p.or(d + 1)
		if err != nil {
			return nil, err
		}
		if p.peek() != ")" {
			return nil, fmt.Errorf("missing ) for ( at offset %d", t.off)
		}
		p.pos++
		return x, nil
	case t.text == "-":
		if d > maxDepth {
			return nil, errors.New("expression nested too deeply")
		}
		x, err := p.atom(d + 1)
		if err != nil {
			return nil, err
		}
		if x.isBool() {
			return nil, errors.New(`"-" needs a number`)
		}
		return &binNode{op: "-", l: numNode(0), r: x}, nil
	}
	if _, ok := tripVars[t.text]; ok {
		return varNode(t.text), nil
	}
	return nil, fmt.Errorf("unknown name %q at offset %d; use requests, totalSuccesses, totalFailures, consecutiveSuccesses or consecutiveFailures", t.text, t.off)
}

type value struct {
	f float64
	b bool
}

type node interface {
	eval(*Counts) (value, error)
	isBool() bool
}

type (
	numNode  float64
	boolNode bool
	varNode  string
	notNode  struct{ x node }
	binNode  struct {
		op   string
		l, r node
		cmp  bool
	}
)

func (n numNode) eval(*Counts) (value, error)    { return value{f: float64(n)}, nil }
func (numNode) isBool() bool                     { return false }
func (n boolNode) eval(*Counts) (value, error)   { return value{b: bool(n)}, nil }
func (boolNode) isBool() bool                    { return true }
func (n varNode) eval(c *Counts) (value, error)  { return value{f: tripVars[string(n)](c)}, nil }
func (varNode) isBool() bool                     { return false }
func (n *notNode) isBool() bool                  { return true }
func (n *notNode) eval(c *Counts) (value, error) { v, err := n.x.eval(c); return value{b: !v.b}, err }

func (n *binNode) isBool() bool {
	return n.cmp || n.op == "&&" || n.op == "||"
}

var errDivZero = errors.New("division by zero")

func (n *binNode) eval(c *Counts) (value, error) {
	l, err := n.l.eval(c)
	if err != nil {
		return value{}, err
	}
	// Short-circuit like CEL, so "requests > 0 && totalFailures/requests > 0.5"
	// is safe when requests is 0.
	switch n.op {
	case "&&":
		if !l.b {
			return value{}, nil
		}
	case "||":
		if l.b {
			return value{b: true}, nil
		}
	}
	r, err := n.r.eval(c)
	if err != nil {
		return value{}, err
	}
	switch n.op {
	case "&&", "||":
		return value{b: r.b}, nil
	case "+":
		return value{f: l.f + r.f}, nil
	case "-":
		return value{f: l.f - r.f}, nil
	case "*":
		return value{f: l.f * r.f}, nil
	case "/", "%":
		if n.op == "/" {
			if r.f == 0 {
				return value{}, errDivZero
			}
			return value{f: l.f / r.f}, nil
		}
		if int64(r.f) == 0 {
			return value{}, errDivZero
		}
		return value{f: float64(int64(l.f) % int64(r.f))}, nil
	case ">":
		return value{b: l.f > r.f}, nil
	case ">=":
		return value{b: l.f >= r.f}, nil
	case "<":
		return value{b: l.f < r.f}, nil
	case "<=":
		return value{b: l.f <= r.f}, nil
	case "==":
		return value{b: l.f == r.f && l.b == r.b}, nil
	case "!=":
		return value{b: l.f != r.f || l.b != r.b}, nil
	}
	return value{}, fmt.Errorf("unknown operator %q", n.op)
}
