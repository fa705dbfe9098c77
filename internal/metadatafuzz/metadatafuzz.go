// Package metadatafuzz is the fuzz driver shared by the metadata parsers of
// the component backends (components/<kind>/<backend>):
//
//	func FuzzParseConfig(f *testing.F) {
//		names := []string{"redisHost", "redisDB"} // every property parseConfig reads
//		metadatafuzz.Run(f, "fuzzed", names, seeds, func(p map[string]string) (config, error) {
//			return parseConfig(components.Metadata{Name: "fuzzed", AppID: "app", Properties: p})
//		}, nil)
//	}
//
// It imports nothing else of ours, so that every backend may use it without
// reaching another kind (see internal/deptest).
package metadatafuzz

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// Run fuzzes the metadata parser of a component named name. An input is the
// component's properties, one "name=value" per line. The seeds are the
// property sets of the backend's table tests, and names (every property the
// parser reads) set all at once to each of a few typical values, so that
// every property is exercised. Besides not panicking, parse must keep
// Dapr's metadata rules:
//   - property names match without regard to case: the same input with the
//     ASCII case of every name swapped parses to the same result;
//   - parsing is deterministic;
//   - an error names the component (quoted, as components.Metadata does);
//   - valid, if not nil, accepts every configuration parsed without error.
func Run[C any](f *testing.F, name string, names []string, seeds []map[string]string, parse func(props map[string]string) (C, error), valid func(C) error) {
	for _, v := range []string{"", "0", "1", "2", "-1", "true", "single", "5s", "1500", "x", "h:1"} {
		all := map[string]string{}
		for _, n := range names {
			all[n] = v
		}
		seeds = append(seeds, all)
	}
	for _, s := range seeds {
		var b strings.Builder
		for _, k := range slices.Sorted(maps.Keys(s)) {
			fmt.Fprintf(&b, "%s=%s\n", k, s[k])
		}
		f.Add(b.String())
	}
	f.Fuzz(func(t *testing.T, text string) {
		props, swapped := map[string]string{}, map[string]string{}
		for line := range strings.Lines(text) {
			k, v, _ := strings.Cut(strings.TrimSuffix(line, "\n"), "=")
			// Names equal but for case would make the lookup ambiguous.
			if slices.ContainsFunc(slices.Collect(maps.Keys(props)), func(p string) bool { return strings.EqualFold(p, k) }) {
				continue
			}
			props[k], swapped[swapCase(k)] = v, v
		}
		c, err := parse(props)
		again, err2 := parse(props)
		if (err == nil) != (err2 == nil) || err == nil && !reflect.DeepEqual(c, again) {
			t.Fatalf("two parses of %q differ: %v / %v", props, err, err2)
		}
		cs, errs := parse(swapped)
		if (err == nil) != (errs == nil) || err == nil && !reflect.DeepEqual(c, cs) {
			t.Fatalf("names in another case parse differently: %q: %v; %q: %v", props, err, swapped, errs)
		}
		if err != nil {
			if !strings.Contains(err.Error(), fmt.Sprintf("%q", name)) {
				t.Fatalf("error %q does not name the component", err)
			}
			return
		}
		if valid != nil {
			if err := valid(c); err != nil {
				t.Fatalf("%q parsed to an invalid configuration: %v", props, err)
			}
		}
	})
}

func swapCase(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case 'a' <= r && r <= 'z':
			return r - 'a' + 'A'
		case 'A' <= r && r <= 'Z':
			return r - 'A' + 'a'
		}
		return r
	}, s)
}
