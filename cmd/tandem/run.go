package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/tandemrun/tandem/cmd/tandem/internal/runfile"
	"github.com/tandemrun/tandem/cmd/tandem/internal/runner"
)

func runCommand(g *globals) *cobra.Command {
	var (
		s        runner.Spec
		runFile  string
		timeout  time.Duration
		resPaths []string
	)
	cmd := &cobra.Command{
		Use:   "run [flags] -- COMMAND [ARGS...]",
		Short: "Run an app (or several with -f) next to a Tandem sidecar",
		Long: `run starts the local sentry if it is not running, then a tandemd sidecar for the
app (mTLS on, certificate from the local CA), then the app itself with
DAPR_HTTP_PORT, DAPR_GRPC_PORT, APP_ID and APP_PORT in its environment, so
unmodified Dapr SDK apps work. Ports left out are picked at random.

It waits for the app's port (--app-port) and shows progress, prints both logs
prefixed with == APP == and == SIDECAR == (also kept in <home>/run/logs), and on
Ctrl-C drains the sidecar and stops the app. The exit code is the app's.

Apps started in other terminals find each other by app ID with no setup
(they share <home>/registry.db).

With -f FILE, every app of a Dapr multi-app run file (version: 1, common,
apps[] with appID, appDirPath, appPort, command, env...) is started.

The sidecar binary is tandemd next to tandem, or on PATH, or $TANDEM_SIDECAR_PATH.`,
		Example: `  tandem run --app-id orders --app-port 3000 -- python3 app.py
  tandem run --app-id checkout -- go run ./checkout
  tandem run --app-id orders --wasm app.wasm
  tandem run -f apps.yaml`,
		RunE: func(cmd *cobra.Command, args []string) error {
			h, err := g.Home()
			if err != nil {
				return err
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			sidecar, err := runner.FindSidecar(exe, os.Getenv)
			if err != nil {
				return err
			}
			var specs []runner.Spec
			if runFile != "" {
				if len(args) > 0 || s.AppID != "" {
					return errors.New("with -f, put the apps, their commands and ports in the file (no --app-id or command)")
				}
				f, err := runfile.Load(runFile)
				if err != nil {
					return err
				}
				for _, w := range f.Warnings {
					fmt.Fprintln(cmd.ErrOrStderr(), "⚠️ ", w)
				}
				for _, a := range f.Apps {
					specs = append(specs, runner.Spec{
						AppID: a.AppID, AppPort: a.AppPort, AppProtocol: a.AppProtocol, Command: a.Command, Dir: a.Dir, Env: a.Env,
						ResourcesPaths: a.ResourcesPaths, ConfigFile: a.ConfigFile,
						HTTPPort: a.HTTPPort, GRPCPort: a.GRPCPort, InternalPort: a.InternalPort, MetricsPort: a.MetricsPort,
						LogLevel: a.LogLevel,
					})
				}
				runFile = f.Path
			} else {
				if s.AppID == "" {
					return errors.New("--app-id is required (the name other apps call this one by), or -f FILE for a multi-app run file")
				}
				s.Command = args
				s.ResourcesPaths = resPaths
				if s.Wasm != "" {
					if len(args) > 0 || s.AppPort != 0 {
						return errors.New("--wasm runs the app inside the sidecar: give no app command and no --app-port")
					}
					if s.Wasm, err = filepath.Abs(s.Wasm); err != nil {
						return err
					}
				}
				specs = []runner.Spec{s}
			}
			code, err := runner.Run(cmd.Context(), runner.Options{
				Home: h, Exe: exe, Sidecar: sidecar, Console: runner.NewConsole(cmd.OutOrStdout()),
				RunFile: runFile, AppPortTimeout: timeout,
			}, specs)
			if err != nil {
				return err
			}
			if code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.SetInterspersed(false) // everything after the first argument belongs to the app
	f.StringVarP(&s.AppID, "app-id", "a", "", "the app's ID: other apps invoke it by this name; also its SPIFFE identity")
	f.IntVarP(&s.AppPort, "app-port", "p", 0, "the port the app listens on (0: the app receives no calls)")
	f.StringVar(&s.Wasm, "wasm", "", "run the app inside the sidecar: the path of its Wasm module (GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared, package wasmapp)")
	f.StringVarP(&s.AppProtocol, "app-protocol", "P", "http", "how the sidecar talks to the app: http, grpc, h2c, https or grpcs")
	f.StringArrayVarP(&resPaths, "resources-path", "d", nil, "folder of component YAML files (repeatable; default <home>/resources)")
	f.StringVarP(&s.ConfigFile, "config", "c", "", "Configuration file (default <home>/config.yaml)")
	f.IntVarP(&s.HTTPPort, "dapr-http-port", "H", 0, "the sidecar's HTTP API port (default: a free port)")
	f.IntVarP(&s.GRPCPort, "dapr-grpc-port", "G", 0, "the sidecar's gRPC API port (default: a free port)")
	f.IntVarP(&s.InternalPort, "dapr-internal-grpc-port", "I", 0, "the sidecar-to-sidecar mTLS port (default: a free port)")
	f.IntVarP(&s.MetricsPort, "metrics-port", "M", 0, "the sidecar's Prometheus metrics port (default: a free port)")
	f.StringVar(&s.LogLevel, "log-level", "info", "the sidecar's log level: debug, info, warn or error")
	f.StringVarP(&runFile, "run-file", "f", "", "a multi-app run file in Dapr's format")
	f.DurationVar(&timeout, "app-port-timeout", 60*time.Second, "how long to wait for the app to listen on --app-port")
	return cmd
}
