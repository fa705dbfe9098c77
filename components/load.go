package components

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
)

// Set is everything loaded from the resource folders for one app.
type Set struct {
	Components    []Component
	Subscriptions []Subscription
	HTTPEndpoints []HTTPEndpoint
	// Documents are the other resources (Resiliency, Configuration, ...),
	// raw.
	Documents []Document
	// Errors are the problems found; the resources they concern are not in
	// the lists above.
	Errors []*ResourceError
	// Conflicts are components defined twice under one name, in daprd's
	// words. daprd refuses such a set (it does not start, or stops on a
	// reload); the lists above keep the first definition of each name.
	Conflicts []error
}

// Filter says whose resources Load keeps.
type Filter struct {
	// AppID: resources whose scopes list other apps only are skipped.
	AppID string
	// Namespace, when not empty, skips the resources of other namespaces
	// (those without metadata.namespace are kept). daprd applies it only
	// when the NAMESPACE variable is set; leave it empty otherwise.
	Namespace string
}

// Conflict returns the Conflicts joined into one error, nil if none.
func (s *Set) Conflict() error {
	if s == nil {
		return nil
	}
	return errors.Join(s.Conflicts...)
}

// Err joins Errors into one error, nil if there are none.
func (s *Set) Err() error {
	if s == nil || len(s.Errors) == 0 {
		return nil
	}
	errs := make([]error, len(s.Errors))
	for i, e := range s.Errors {
		errs[i] = e
	}
	return errors.Join(errs...)
}

// Component returns a component by name.
func (s *Set) Component(name string) (Component, bool) {
	for _, c := range s.Components {
		if c.Name == name {
			return c, true
		}
	}
	return Component{}, false
}

// ComponentsOf returns the components of one category ("state", "pubsub",
// "secretstores", ...), in load order.
func (s *Set) ComponentsOf(category string) []Component {
	var out []Component
	for _, c := range s.Components {
		if c.Category() == category {
			out = append(out, c)
		}
	}
	return out
}

// DocumentsOf returns the raw documents of one kind, e.g. KindResiliency.
func (s *Set) DocumentsOf(kind string) []Document {
	var out []Document
	for _, d := range s.Documents {
		if d.Kind == kind {
			out = append(out, d)
		}
	}
	return out
}

// Load reads every .yaml and .yml file of every folder (not recursively,
// like daprd), in folder order then file name order, and keeps the
// resources whose scopes are empty or contain appID.
//
// It never stops at a broken file: the returned Set holds what loaded, and
// the error (also in Set.Errors) lists every problem, each naming the file,
// the resource and the field. A component name used twice keeps the first
// and reports the second.
func Load(dirs []string, appID string) (*Set, error) {
	return LoadFiltered(dirs, Filter{AppID: appID})
}

// LoadFiltered is Load keeping only the resources f selects.
func LoadFiltered(dirs []string, f Filter) (*Set, error) {
	s := &Set{}
	for _, file := range listFiles(dirs, s) {
		data, err := os.ReadFile(file)
		if err != nil {
			s.Errors = append(s.Errors, &ResourceError{File: file, Err: fmt.Errorf("%w; check the file's permissions", err)})
			continue
		}
		s.merge(Parse(data, file, f.AppID))
	}
	if f.Namespace != "" {
		s.keepNamespace(f.Namespace)
	}
	s.dedupe()
	return s, s.Err()
}

// keepNamespace drops the resources of namespaces other than ns.
func (s *Set) keepNamespace(ns string) {
	s.Components = slices.DeleteFunc(s.Components, func(c Component) bool { return c.Namespace != "" && c.Namespace != ns })
	s.Subscriptions = slices.DeleteFunc(s.Subscriptions, func(x Subscription) bool { return x.Namespace != "" && x.Namespace != ns })
	s.Documents = slices.DeleteFunc(s.Documents, func(d Document) bool { return d.Namespace != "" && d.Namespace != ns })
}

// listFiles lists the resource files of dirs; unreadable folders become
// errors in s.
func listFiles(dirs []string, s *Set) []string {
	var files []string
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			s.Errors = append(s.Errors, &ResourceError{File: dir, Err: fmt.Errorf("cannot read the resources folder: %w; check --resources-path", err)})
			continue
		}
		var names []string
		for _, e := range entries {
			name := e.Name()
			ext := strings.ToLower(filepath.Ext(name))
			if (ext != ".yaml" && ext != ".yml") || strings.HasPrefix(name, ".") {
				continue
			}
			p := filepath.Join(dir, name)
			if st, err := os.Stat(p); err != nil || st.IsDir() {
				continue // dangling symlink or folder named *.yaml
			}
			names = append(names, p)
		}
		sort.Strings(names)
		files = append(files, names...)
	}
	return files
}

func (s *Set) merge(o *Set) {
	s.Components = append(s.Components, o.Components...)
	s.Subscriptions = append(s.Subscriptions, o.Subscriptions...)
	s.HTTPEndpoints = append(s.HTTPEndpoints, o.HTTPEndpoints...)
	s.Documents = append(s.Documents, o.Documents...)
	s.Errors = append(s.Errors, o.Errors...)
}

// dedupe keeps the first resource of each kind and name and reports the
// others: components as Conflicts, subscriptions as Errors.
func (s *Set) dedupe() {
	seen := map[string]Component{}
	comps := s.Components[:0]
	for _, c := range s.Components {
		if first, dup := seen[c.Name]; dup {
			// daprd's words, which tools look for; the files say where.
			s.Conflicts = append(s.Conflicts, fmt.Errorf("duplicate definition of %s name %s with existing %s",
				KindComponent, c.LogName(), first.LogName()))
			continue
		}
		seen[c.Name] = c
		comps = append(comps, c)
	}
	s.Components = comps

	seenSub := map[string]Subscription{}
	subs := s.Subscriptions[:0]
	for _, sub := range s.Subscriptions {
		if first, dup := seenSub[sub.Name]; dup {
			s.Errors = append(s.Errors, &ResourceError{File: sub.Source, Line: sub.Line, Kind: KindSubscription, Name: sub.Name, Field: "metadata.name",
				Err: fmt.Errorf("already used by the subscription in %s; subscription names must be unique (this one is ignored)", first.Source)})
			continue
		}
		seenSub[sub.Name] = sub
		subs = append(subs, sub)
	}
	s.Subscriptions = subs

	seenEP := map[string]HTTPEndpoint{}
	eps := s.HTTPEndpoints[:0]
	for _, e := range s.HTTPEndpoints {
		if first, dup := seenEP[e.Name]; dup {
			s.Errors = append(s.Errors, &ResourceError{File: e.Source, Line: e.Line, Kind: KindHTTPEndpoint, Name: e.Name, Field: "metadata.name",
				Err: fmt.Errorf("already used by the HTTP endpoint in %s; HTTP endpoint names must be unique (this one is ignored)", first.Source)})
			continue
		}
		seenEP[e.Name] = e
		eps = append(eps, e)
	}
	s.HTTPEndpoints = eps
}
