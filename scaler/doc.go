// Package scaler is a KEDA external scaler for Tandem apps: it serves
// KEDA's published externalscaler.proto (IsActive, StreamIsActive,
// GetMetricSpec, GetMetrics) with the load the apps' sidecars report in
// their metadata API (internal/loadreport: extended["tandem.load"]).
//
// A ScaledObject names the app in its scalerMetadata:
//
//	appId          the app ID (required)
//	namespace      the app's namespace (default: the ScaledObject's)
//	metric         pending (default: messages waiting in the broker or in flight),
//	               invocations (service invocations in flight) or actors (active actors)
//	pubsubName     only this pub/sub component's subscriptions (pending)
//	topic          only this topic's subscriptions (pending)
//	targetValue    the value per replica KEDA aims at (default 10);
//	               targetBacklog is its name for metric pending
//	activationValue  the app is active above this (default 0);
//	               activationBacklog is its name for metric pending
//
// The sidecars of an app are found by a Finder: a fixed list of metadata
// endpoints (self-hosted), or the DNS name of the app's headless Service
// `<app-id>-dapr.<namespace>.svc.cluster.local`, which the operator makes,
// resolved to every pod's address (Kubernetes). The broker's backlog
// (backlog + unacked) is the consumer group's, the same in every replica,
// so the replicas' figures are not added up: the largest is taken; the
// sidecars' own figures (in-flight deliveries, invocations, actors) are
// summed.
//
// It is a control-plane library: it imports internal/loadreport and its
// generated externalscaler package, never the sidecar's packages.
package scaler

//go:generate bash ./externalscaler/generate.sh
