package main

import (
	"os"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
	"github.com/tandemrun/tandem/cmd/tandem/internal/registry"
)

// globals are the persistent flags.
type globals struct {
	home string
}

func (g *globals) Home() (*home.Home, error) { return home.Resolve(g.home, os.Getenv) }

// apps returns the live run records of the home.
func (g *globals) apps() (*home.Home, []*registry.App, error) {
	h, err := g.Home()
	if err != nil {
		return nil, nil, err
	}
	list, err := registry.Dir(h.AppsDir()).List()
	return h, list, err
}
