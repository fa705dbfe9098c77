// Package config reads Dapr's Configuration resource
// (apiVersion dapr.io/v1alpha1, kind Configuration), the file passed to
// daprd with --config.
//
// The YAML shape follows Dapr 1.18 (pkg/config/configuration.go): a file
// written for daprd loads here unchanged. Fields that Dapr does not know are
// ignored by Dapr; Tandem ignores them too but reports each one in
// Configuration.Warnings so a typo such as "samplingrate" is visible.
// Semantically wrong values (an ACL action "permit", a sampling rate "2",
// a duration "1 day") are reported by Validate, naming the file, the field
// path and the allowed values.
//
// Typical use, in cmd only:
//
//	cfg, err := config.LoadFiles(os.Getenv, opts.ConfigPaths...)
//	if err != nil { ... }
//	for _, w := range cfg.Warnings { log.Warn("configuration", "warning", w.String()) }
//	if err := cfg.Validate(); err != nil { ... }
//
// Zero paths yield Default(). The package imports nothing else of Tandem's.
package config
