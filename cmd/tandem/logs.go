package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/tail"
)

func logsCommand(g *globals) *cobra.Command {
	var (
		sidecar, follow bool
		lines           int
	)
	cmd := &cobra.Command{
		Use:   "logs APP_ID",
		Short: "Print an app's log (or its sidecar's with --sidecar) from its last run",
		Long: `logs prints <home>/run/logs/APP_ID.app.log (or .sidecar.log with --sidecar). The
files are kept after the app stops, until its next run.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			path := h.AppLog(args[0])
			if sidecar {
				path = h.SidecarLog(args[0])
			}
			f, err := os.Open(path)
			if errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("no log for app %q in %s: has it been run with `tandem run --app-id %s`?", args[0], h.LogsDir(), args[0])
			}
			if err != nil {
				return err
			}
			defer f.Close()
			out := cmd.OutOrStdout()
			if lines > 0 {
				fmt.Fprintln(out, tail.File(path, lines))
				if _, err := f.Seek(0, io.SeekEnd); err != nil {
					return err
				}
			} else if _, err := io.Copy(out, f); err != nil {
				return err
			}
			for follow {
				if _, err := io.Copy(out, f); err != nil {
					return err
				}
				select {
				case <-cmd.Context().Done():
					return nil
				case <-time.After(200 * time.Millisecond):
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&sidecar, "sidecar", "s", false, "print the sidecar's log instead of the app's")
	cmd.Flags().BoolVarP(&follow, "follow", "F", false, "keep printing new lines")
	cmd.Flags().IntVarP(&lines, "tail", "n", 0, "print only the last N lines")
	return cmd
}
