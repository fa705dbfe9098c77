// Package api is the protocol-neutral core of the building-block APIs
// (state, secrets, pub/sub): httpapi and grpcapi decode requests into its
// calls and encode its results and errors (apierr) back. It reaches the
// components through their registries and the app through App.
package api

import "github.com/tandemrun/tandem/proxy/appchannel"

// App is how the building blocks reach the app next to the sidecar. At most
// one of HTTP and GRPC is set; both are nil when the sidecar has no app.
type App struct {
	HTTP *appchannel.HTTP
	GRPC *appchannel.GRPC
}
