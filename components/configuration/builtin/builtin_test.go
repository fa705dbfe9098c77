package builtin

import "testing"

func TestKind(t *testing.T) {
	k := Kind(nil)
	if k.Category != "configuration" || len(k.Types) != 2 {
		t.Fatalf("Kind = %q %v", k.Category, k.Types)
	}
	for _, typ := range k.Types {
		s, ok := k.New(typ)
		if !ok {
			t.Fatalf("%s missing", typ)
		}
		if err := s.Close(); err != nil {
			t.Errorf("%s: Close before Init: %v", typ, err)
		}
	}
}
