package workflow

import (
	"errors"
	"regexp"
)

// existsErr is ErrExists for one instance, in daprd's words: "an active
// workflow with ID '{id}' already exists". The durabletask clients show
// that text, and callers (and Dapr's tests) match it.
type existsErr struct{ id string }

func (x existsErr) Error() string { return "an active workflow with ID '" + x.id + "' already exists" }
func (x existsErr) Unwrap() error { return ErrExists }

// existsText finds an existsErr in a remote host's error text.
var existsText = regexp.MustCompile(`an active workflow with ID '(.*)' already exists`)

// isExists reports whether err, or its text (a remote host's answer),
// says the ID belongs to a running instance.
func isExists(err error) bool {
	return errors.Is(err, ErrExists) || containsText(err, ErrExists) || existsText.MatchString(err.Error())
}

// existsFrom restores the existsErr err carries, or names in its text.
func existsFrom(err error) (error, bool) {
	var x existsErr
	if errors.As(err, &x) {
		return x, true
	}
	if m := existsText.FindStringSubmatch(err.Error()); m != nil {
		return existsErr{id: m[1]}, true
	}
	return nil, false
}
