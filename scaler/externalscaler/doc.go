// Package externalscaler is KEDA's external scaler protocol
// (externalscaler.proto, service externalscaler.ExternalScaler), generated
// by generate.sh; only doc.go and generate.sh are written by hand.
package externalscaler
