// Package runner is `tandem run`: it starts, for each app, a tandemd
// sidecar (mTLS on, certificates from the home's local sentry with the
// join token) and then the app with DAPR_HTTP_PORT, DAPR_GRPC_PORT, APP_ID
// and APP_PORT in its environment; waits for the app's port with progress;
// streams both logs with prefixes to the terminal and to
// home/run/logs; records the run for `tandem list`/`stop`; and on a signal
// drains the sidecar, then stops the app.
//
// Children run in their own process groups (a terminal's Ctrl-C reaches
// only tandem, which then stops them in order) and get SIGTERM if tandem
// dies (Linux parent-death signal). Whatever a hard-killed run leaves
// behind is cleaned up by the next run of the same app ID.
package runner
