// Package jobs is the sidecar's side of Dapr's scheduler
// (dapr.proto.scheduler.v1): it finds the scheduler hosts through
// WatchHosts on one of --scheduler-host-address's addresses, keeps a
// connection to each, makes the job calls on them in turn (Client), and
// holds the WatchJobs streams over which the schedulers trigger this app's
// jobs and its actors' reminders, acknowledging each trigger with Dapr's
// result codes.
//
// The binary's root builds one Scheduler (New) and runs it as a task; the
// jobs API and the actor reminders call it; the sidecar says when the app
// may take jobs (SetApp) and the actors which types they host
// (SetActorTypes). A scheduler that is down never stops the sidecar: the
// streams and the host watch retry with backoff until it is back.
//
// It imports nothing of Tandem's: the trigger handlers are functions handed
// in.
package jobs
