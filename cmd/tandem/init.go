package main

import (
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/home"
)

func initCommand(g *globals) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create the Tandem home folder: default resources, a local CA and a join token",
		Long: `init creates the home folder (~/.tandem, or --home, or $TANDEM_HOME) with:

  resources/statestore.yaml   state store "statestore" (state.sqlite, state.db)
  resources/pubsub.yaml       pub/sub "pubsub" (pubsub.sqlite, pubsub.db: shared by every
                              app of this home, durable, one consumer group per app ID)
  resources/secretstore.yaml  secret store "localsecretstore" (secrets.json)
  resources/resiliency.yaml   timeouts and retries
  config.yaml                 Configuration: mTLS on, sqlite name resolution, tracing off
  certs/                      a local root CA and issuer (ca.crt, issuer.crt, issuer.key)
  join-token                  the token sidecars present to the local sentry

No Docker and no server are needed. Existing files are kept; --force rewrites
them all (a new CA and token: restart running apps afterwards).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			start := time.Now()
			written, err := h.Init(home.InitOptions{Force: force})
			out := cmd.OutOrStdout()
			for _, w := range written {
				mark := "kept   "
				if w.Created {
					mark = "wrote  "
				}
				rel, _ := filepath.Rel(h.Dir, w.Path)
				fmt.Fprintf(out, "  %s %-28s %s\n", mark, rel, w.What)
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(out, "✅  Tandem is initialised in %s (%s)\n", h.Dir, time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(out, "Next: tandem run --app-id myapp --app-port 3000 -- <your app command>\n")
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "rewrite every file, including a new CA and join token")
	return cmd
}
