package flagvalue

import (
	"flag"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestList(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want []string
	}{
		{nil, []string{"default"}},
		{[]string{"--l", "a,b"}, []string{"a", "b"}},
		{[]string{"--l", "a", "--l", " b , ,c"}, []string{"a", "b", "c"}},
	} {
		v := []string{"default"}
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Var(NewList(&v), "l", "")
		if err := fs.Parse(tt.args); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(v, tt.want) {
			t.Errorf("%v: %v, want %v", tt.args, v, tt.want)
		}
		if got := fs.Lookup("l").Value.String(); got != strings.Join(tt.want, ",") {
			t.Errorf("%v: String() = %q", tt.args, got)
		}
	}
}
