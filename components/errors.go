package components

import (
	"errors"
	"fmt"
	"strings"
)

// ResourceError is a problem with one resource file, one document in it, or
// one field of one document. Its message names the file, the resource and
// the field, and never contains a secret value.
type ResourceError struct {
	// File is the file (or folder) the problem is in.
	File string
	// Line is the line of the document, when known; shown only for
	// documents without a name.
	Line int
	// Kind and Name identify the resource; both empty when the whole file
	// could not be read.
	Kind string
	Name string
	// Field is the path of the field at fault, e.g. "spec.type".
	Field string
	Err   error
}

func (e *ResourceError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Name == "" && e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	if e.Kind != "" {
		b.WriteString(": ")
		b.WriteString(lowerFirst(e.Kind))
		if e.Name != "" {
			fmt.Fprintf(&b, " %q", e.Name)
		}
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	if e.Err != nil {
		b.WriteString(e.Err.Error())
	}
	return b.String()
}

func (e *ResourceError) Unwrap() error { return e.Err }

// fileLevel reports whether the error concerns the whole file (nothing in
// it was loaded).
func (e *ResourceError) fileLevel() bool { return e.Kind == "" }

// permanent marks errors that retrying cannot fix (unknown type, bad
// template); the Manager stops retrying until the resource changes.
type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent wraps err so that the Manager does not retry it: use it from an
// Init for configuration errors that only an edit of the file can fix.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanent{err}
}

// IsPermanent reports whether err (or an error it wraps) was marked with
// Permanent, or says so itself with a Permanent() bool method (how
// packages below components, such as internal/wasmguest, mark theirs).
func IsPermanent(err error) bool {
	var p permanent
	if errors.As(err, &p) {
		return true
	}
	var s interface{ Permanent() bool }
	return errors.As(err, &s) && s.Permanent()
}

func lowerFirst(s string) string {
	if s == "" {
		return s
	}
	if s == "HTTPEndpoint" {
		return "HTTPEndpoint"
	}
	return strings.ToLower(s[:1]) + s[1:]
}
