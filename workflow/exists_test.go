package workflow

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestExistsErr: a create refused because the ID runs says so in daprd's
// words, naming the ID, from this host and from another's text, and
// reaches the durabletask clients as AlreadyExists.
func TestExistsErr(t *testing.T) {
	const want = "an active workflow with ID 'foo' already exists"
	local := existsErr{id: "foo"}
	remote := status.Error(codes.Unknown, "actor call failed: "+want)
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"local", local},
		{"remote", remote},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := unwrapActorErr(tc.err)
			if !errors.Is(got, ErrExists) || got.Error() != want {
				t.Fatalf("unwrapActorErr = %q (is ErrExists %v), want %q", got, errors.Is(got, ErrExists), want)
			}
			if !isExists(tc.err) || !childTaken(tc.err) {
				t.Errorf("isExists %v, childTaken %v: want both", isExists(tc.err), childTaken(tc.err))
			}
			s := status.Convert(grpcErr(got))
			if s.Code() != codes.AlreadyExists || !strings.Contains(s.Message(), want) {
				t.Errorf("grpcErr = %v %q", s.Code(), s.Message())
			}
		})
	}
	if isExists(errors.New("workflow instance does not exist")) {
		t.Error("isExists of a not-found error")
	}
}
