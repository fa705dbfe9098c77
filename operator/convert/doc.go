// Package convert is the operator's CRD conversion webhook, as Dapr's
// operator serves it at /convert: Subscriptions between dapr.io/v1alpha1
// (spec.route) and dapr.io/v2alpha1 (spec.routes.default). Tandem's chart
// installs the Subscription CRD without a conversion webhook, but a cluster
// that still has Dapr's CRD (conversion strategy Webhook, service
// dapr-webhook) keeps working with Tandem's operator behind that Service.
package convert
