package components

import (
	"errors"
	"fmt"
	"testing"
)

// selfPermanent is an error that says it is permanent, as packages below
// components mark theirs.
type selfPermanent bool

func (e selfPermanent) Error() string   { return "self" }
func (e selfPermanent) Permanent() bool { return bool(e) }

func TestIsPermanent(t *testing.T) {
	for _, c := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("x"), false},
		{Permanent(errors.New("x")), true},
		{fmt.Errorf("wrapped: %w", Permanent(errors.New("x"))), true},
		{selfPermanent(true), true},
		{fmt.Errorf("wrapped: %w", selfPermanent(true)), true},
		{selfPermanent(false), false},
	} {
		if got := IsPermanent(c.err); got != c.want {
			t.Errorf("IsPermanent(%v) = %v, want %v", c.err, got, c.want)
		}
	}
}
