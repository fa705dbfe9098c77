// Package runfile reads Dapr's multi-app run file (`dapr run -f`), so the
// same file starts the same apps under `tandem run -f`:
//
//	version: 1
//	common:
//	  resourcesPath: ./resources
//	  env: {DEBUG: "true"}
//	apps:
//	  - appID: orders
//	    appDirPath: ./orders
//	    appPort: 3000
//	    command: ["go", "run", "."]
//
// Relative paths are relative to the file's folder (appDirPath) or to the
// app's folder (resourcesPath, configFilePath), as in the Dapr CLI. Fields
// Tandem does not use are reported as warnings, not errors.
package runfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// File is a parsed run file.
type File struct {
	Path     string
	Version  int
	Apps     []App
	Warnings []string
}

// App is one app of the file with common settings applied and paths made
// absolute.
type App struct {
	AppID          string
	Dir            string
	AppPort        int
	AppProtocol    string
	Command        []string
	Env            map[string]string
	ResourcesPaths []string
	ConfigFile     string
	HTTPPort       int
	GRPCPort       int
	InternalPort   int
	MetricsPort    int
	LogLevel       string
}

// fields are the keys of an app (and of common) in Dapr's format.
type fields struct {
	AppID                 string            `yaml:"appID"`
	AppDirPath            string            `yaml:"appDirPath"`
	AppPort               int               `yaml:"appPort"`
	AppProtocol           string            `yaml:"appProtocol"`
	Command               []string          `yaml:"command"`
	Env                   map[string]envVal `yaml:"env"`
	ResourcesPath         string            `yaml:"resourcesPath"`
	ResourcesPaths        []string          `yaml:"resourcesPaths"`
	ConfigFilePath        string            `yaml:"configFilePath"`
	DaprHTTPPort          int               `yaml:"daprHTTPPort"`
	DaprGRPCPort          int               `yaml:"daprGRPCPort"`
	DaprInternalGRPCPort  int               `yaml:"daprInternalGRPCPort"`
	MetricsPort           int               `yaml:"metricsPort"`
	LogLevel              string            `yaml:"logLevel"`
	AppLogDestination     string            `yaml:"appLogDestination"`
	DaprdLogDestination   string            `yaml:"daprdLogDestination"`
	EnableAPILogging      bool              `yaml:"enableApiLogging"`
	AppHealthCheckPath    string            `yaml:"appHealthCheckPath"`
	EnableAppHealthCheck  bool              `yaml:"enableAppHealthCheck"`
	AppMaxConcurrency     int               `yaml:"appMaxConcurrency"`
	PlacementHostAddress  string            `yaml:"placementHostAddress"`
	SchedulerHostAddress  string            `yaml:"schedulerHostAddress"`
	DaprHTTPMaxRequestSz  int               `yaml:"daprHTTPMaxRequestSize"`
	DaprHTTPReadBufferSz  int               `yaml:"daprHTTPReadBufferSize"`
	UnixDomainSocket      string            `yaml:"unixDomainSocket"`
	AppSSL                bool              `yaml:"appSSL"`
	EnableProfiling       bool              `yaml:"enableProfiling"`
	ProfilePort           int               `yaml:"profilePort"`
	RuntimePath           string            `yaml:"runtimePath"`
	AppHealthProbeTimeout int               `yaml:"appHealthProbeTimeout"`
	AppHealthThreshold    int               `yaml:"appHealthThreshold"`
	AppHealthProbeIntvl   int               `yaml:"appHealthProbeInterval"`
	AppChannelAddress     string            `yaml:"appChannelAddress"`
	MaxBodySize           string            `yaml:"maxBodySize"`
	ReadBufferSize        string            `yaml:"readBufferSize"`
	ContainerImage        string            `yaml:"containerImage"`
	CreateService         bool              `yaml:"createService"`
}

// envVal accepts any scalar (YAML `true` or `8080` become "true", "8080").
type envVal string

func (e *envVal) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: env values must be strings, numbers or booleans", n.Line)
	}
	*e = envVal(n.Value)
	return nil
}

type fileYAML struct {
	Version int      `yaml:"version"`
	Common  fields   `yaml:"common"`
	Apps    []fields `yaml:"apps"`
}

// Load reads and checks a run file.
func Load(path string) (*File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(abs)
	if err != nil {
		return nil, fmt.Errorf("read run file: %w", err)
	}
	return Parse(abs, b)
}

// Parse parses run file data; path (absolute) anchors relative paths.
func Parse(path string, data []byte) (*File, error) {
	var raw fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("%s: %w (see Dapr's multi-app run format: version, common, apps)", path, err)
	}
	f := &File{Path: path, Version: raw.Version}
	if raw.Version != 1 {
		return nil, fmt.Errorf("%s: version %d is not supported; write `version: 1`", path, raw.Version)
	}
	if len(raw.Apps) == 0 {
		return nil, fmt.Errorf("%s: no apps; list them under `apps:` with appID and command", path)
	}
	base := filepath.Dir(path)
	seen := map[string]bool{}
	for i, a := range raw.Apps {
		where := fmt.Sprintf("%s: apps[%d]", path, i)
		if a.AppID == "" {
			return nil, fmt.Errorf("%s: appID is required", where)
		}
		if seen[a.AppID] {
			return nil, fmt.Errorf("%s: appID %q appears twice; app IDs must be unique", where, a.AppID)
		}
		seen[a.AppID] = true
		app := App{
			AppID:       a.AppID,
			Dir:         abs(base, a.AppDirPath),
			AppPort:     a.AppPort,
			AppProtocol: pick(a.AppProtocol, raw.Common.AppProtocol),
			Command:     a.Command,
			Env:         map[string]string{},
			HTTPPort:    a.DaprHTTPPort, GRPCPort: a.DaprGRPCPort, InternalPort: a.DaprInternalGRPCPort,
			MetricsPort: a.MetricsPort,
			LogLevel:    pick(a.LogLevel, raw.Common.LogLevel),
		}
		if len(app.Command) == 0 {
			app.Command = raw.Common.Command
		}
		for k, v := range raw.Common.Env {
			app.Env[k] = string(v)
		}
		for k, v := range a.Env {
			app.Env[k] = string(v)
		}
		// Resources and config are relative to the app's folder.
		res := a.ResourcesPaths
		if a.ResourcesPath != "" {
			res = append(res, a.ResourcesPath)
		}
		if len(res) == 0 {
			res = raw.Common.ResourcesPaths
			if raw.Common.ResourcesPath != "" {
				res = append(res, raw.Common.ResourcesPath)
			}
			for _, r := range res {
				app.ResourcesPaths = append(app.ResourcesPaths, abs(base, r))
			}
		} else {
			for _, r := range res {
				app.ResourcesPaths = append(app.ResourcesPaths, abs(app.Dir, r))
			}
		}
		if a.ConfigFilePath != "" {
			app.ConfigFile = abs(app.Dir, a.ConfigFilePath)
		} else if raw.Common.ConfigFilePath != "" {
			app.ConfigFile = abs(base, raw.Common.ConfigFilePath)
		}
		if st, err := os.Stat(app.Dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("%s (%s): appDirPath %s is not a folder", where, a.AppID, app.Dir)
		}
		f.Warnings = append(f.Warnings, ignored(a.AppID, a)...)
		f.Apps = append(f.Apps, app)
	}
	f.Warnings = append(f.Warnings, ignored("common", raw.Common)...)
	return f, nil
}

// Find returns the app with id.
func (f *File) Find(id string) (App, error) {
	for _, a := range f.Apps {
		if a.AppID == id {
			return a, nil
		}
	}
	return App{}, errors.New("app " + strconv.Quote(id) + " is not in " + f.Path)
}

func ignored(who string, a fields) []string {
	var out []string
	add := func(set bool, name string) {
		if set {
			out = append(out, fmt.Sprintf("%s: %s is not supported by tandem run and is ignored", who, name))
		}
	}
	add(a.EnableAPILogging, "enableApiLogging")
	add(a.EnableAppHealthCheck || a.AppHealthCheckPath != "", "app health checks")
	add(a.PlacementHostAddress != "", "placementHostAddress")
	add(a.SchedulerHostAddress != "", "schedulerHostAddress")
	add(a.UnixDomainSocket != "", "unixDomainSocket")
	add(a.ContainerImage != "" || a.CreateService, "Kubernetes fields")
	add(a.RuntimePath != "", "runtimePath")
	add(a.AppLogDestination != "" && a.AppLogDestination != "fileAndConsole", "appLogDestination (logs always go to the console and to the log file)")
	sort.Strings(out)
	return out
}

func pick(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func abs(base, p string) string {
	if p == "" {
		return base
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}
