package home

import "fmt"

// The default resources, in Dapr's formats so they also work with daprd.

func stateStoreYAML(h *Home) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: %q
  - name: actorStateStore
    value: "false"
`, h.StateDB())
}

// pubsubYAML is pubsub.sqlite on one file in the home folder: every sidecar
// started from this home shares it, so apps in different `tandem run`s
// publish to each other. Each app is its own consumer group (its app ID).
func pubsubYAML(h *Home) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.sqlite
  version: v1
  metadata:
  - name: connectionString
    value: %q
`, h.PubSubDB())
}

func secretStoreYAML(h *Home) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecretstore
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: %q
  - name: nestedSeparator
    value: ":"
`, h.SecretsFile())
}

func configYAML(h *Home) string {
	return fmt.Sprintf(`apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: tandem
spec:
  mtls:
    enabled: true
    workloadCertTTL: 24h
    allowedClockSkew: 15m
  tracing:
    samplingRate: "0"
  nameResolution:
    component: sqlite
    configuration:
      connectionString: %q
      updateInterval: 2s
`, h.RegistryDB())
}

const resiliencyYAML = `apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: tandem-defaults
spec:
  policies:
    timeouts:
      general: 10s
    retries:
      transient:
        policy: exponential
        maxInterval: 5s
        maxRetries: 3
  targets:
    components:
      statestore:
        outbound:
          timeout: general
          retry: transient
`
