// Package builtin lists the secret store backends compiled into tandemd.
// Only cmd imports it.
package builtin

import (
	"github.com/tandemrun/tandem/components"
	"github.com/tandemrun/tandem/components/secretstores"
	"github.com/tandemrun/tandem/components/secretstores/localenv"
	"github.com/tandemrun/tandem/components/secretstores/localfile"
)

// Types lists the known spec.type values.
func Types() []string { return []string{localenv.Type, localfile.Type} }

// New returns a fresh store for a spec.type.
func New(typ string) (secretstores.SecretStore, bool) {
	switch typ {
	case localfile.Type:
		return localfile.New(), true
	case localenv.Type:
		return localenv.New(), true
	}
	return nil, false
}

// Kind is the secret store kind with the built-in backends, for
// components.NewManager.
func Kind() components.Kind[secretstores.SecretStore] {
	return secretstores.Kind(New, Types())
}
