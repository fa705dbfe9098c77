// Package injector is the mutating admission webhook that adds the Tandem
// sidecar to every pod annotated dapr.io/enabled: "true", honouring Dapr
// 1.18's dapr.io/* annotations (pkg/injector/annotations).
//
// The sidecar is a native sidecar by default: an init container with
// restartPolicy Always, so it starts before the app, stops after it, and
// lets Jobs complete. dapr.io/enable-native-sidecar: "false" opts back into
// a classic container. The sidecar gets a projected service account token
// for sentry (audience dapr.io/sentry) and the trust bundle ConfigMap
// mounted as a file, which it watches, so a root rotation needs no
// restart; the app's containers get DAPR_HTTP_PORT and DAPR_GRPC_PORT.
//
// A dapr.io/* annotation that is unknown or malformed is an admission error
// naming it. Pods without dapr.io/enabled are never touched, and a pod that
// already has the sidecar is left as it is, so mutating twice changes
// nothing.
package injector
