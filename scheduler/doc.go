// Package scheduler is Tandem's scheduler service, a drop-in for Dapr's: it
// keeps jobs (the Jobs API's jobs, actor reminders, workflow timers) durable
// in etcd and triggers each tick once, delivered over
// dapr.proto.scheduler.v1.Scheduler/WatchJobs to one of the connected
// sidecars of the job's app.
//
// The work is split over these packages, each with one job:
//
//   - schedule: a job's schedule (cron with seconds, @every, due time,
//     repeats, ttl) and when its next tick is;
//   - store: the embedded etcd server, the client, and the key layout and
//     records kept in it (Dapr's keys: dapr/jobs/, dapr/counters/,
//     dapr/leadership/);
//   - pool: the sidecars' WatchJobs streams and delivery to them;
//   - engine: leadership among replicas, which replica owns which job, and
//     the timers that trigger the ticks;
//   - server: the gRPC API, its authorization and the metrics.
//
// cmd/scheduler wires them together. Only cmd/scheduler imports these
// packages; they import nothing of the sidecar.
package scheduler
