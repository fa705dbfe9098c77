package server

import (
	"time"

	schedulerv1 "github.com/dapr/dapr/pkg/proto/scheduler/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Dapr scheduler's Prometheus metrics, under its names
// (dapr_scheduler_*), with its "type" label (job, actor, unknown).
type Metrics struct {
	SidecarsConnected prometheus.Gauge
	jobsCreated       *prometheus.CounterVec
	jobsCreatedFailed *prometheus.CounterVec
	jobsTriggered     *prometheus.CounterVec
	jobsFailed        *prometheus.CounterVec
	jobsUndelivered   *prometheus.CounterVec
	jobsDeleted       *prometheus.CounterVec
	bulkDeleted       prometheus.Counter
	triggerLatency    *prometheus.HistogramVec
	sidecarErrors     *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	typed := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dapr", Subsystem: "scheduler", Name: name, Help: help}, []string{"type"})
	}
	m := &Metrics{
		SidecarsConnected: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "dapr", Subsystem: "scheduler", Name: "sidecars_connected",
			Help: "The number of dapr sidecars actively connected to the scheduler service."}),
		jobsCreated:       typed("jobs_created_total", "The total number of jobs scheduled."),
		jobsCreatedFailed: typed("jobs_created_failed_total", "The total number of failed job creation attempts."),
		jobsTriggered:     typed("jobs_triggered_total", "The total number of successfully triggered jobs."),
		jobsFailed:        typed("jobs_failed_total", "The total number of failed jobs."),
		jobsUndelivered:   typed("jobs_undelivered_total", "The total number of undelivered jobs."),
		jobsDeleted:       typed("jobs_deleted_total", "The total number of deleted jobs."),
		bulkDeleted: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "dapr", Subsystem: "scheduler", Name: "jobs_bulk_deleted_total",
			Help: "The total number of bulk job deletion operations."}),
		triggerLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "dapr", Subsystem: "scheduler", Name: "trigger_latency",
			Help: "The total time it takes to trigger a job from the scheduler service.", Buckets: []float64{0, 100, 500, 1000, 5000, 10000}}, []string{"type"}),
		sidecarErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "dapr", Subsystem: "scheduler", Name: "sidecar_errors_total",
			Help: "The total number of sidecar communication and authorization errors."}, []string{"reason"}),
	}
	if reg != nil {
		reg.MustRegister(m.SidecarsConnected, m.jobsCreated, m.jobsCreatedFailed, m.jobsTriggered, m.jobsFailed,
			m.jobsUndelivered, m.jobsDeleted, m.bulkDeleted, m.triggerLatency, m.sidecarErrors)
	}
	return m
}

func jobType(meta *schedulerv1.JobMetadata) string {
	switch meta.GetTarget().GetType().(type) {
	case *schedulerv1.JobTargetMetadata_Job:
		return "job"
	case *schedulerv1.JobTargetMetadata_Actor:
		return "actor"
	}
	return "unknown"
}

func (m *Metrics) created(meta *schedulerv1.JobMetadata) {
	m.jobsCreated.WithLabelValues(jobType(meta)).Inc()
}

func (m *Metrics) createdFailed(meta *schedulerv1.JobMetadata) {
	m.jobsCreatedFailed.WithLabelValues(jobType(meta)).Inc()
}

func (m *Metrics) deleted(meta *schedulerv1.JobMetadata) {
	m.jobsDeleted.WithLabelValues(jobType(meta)).Inc()
}

// Triggered counts a tick the sidecar succeeded; took is how long its
// delivery took.
func (m *Metrics) Triggered(meta *schedulerv1.JobMetadata, took time.Duration) {
	m.jobsTriggered.WithLabelValues(jobType(meta)).Inc()
	m.triggerLatency.WithLabelValues(jobType(meta)).Observe(milliseconds(took))
}

// Failed counts a tick the sidecar failed, with how long it took.
func (m *Metrics) Failed(meta *schedulerv1.JobMetadata, took time.Duration) {
	m.jobsFailed.WithLabelValues(jobType(meta)).Inc()
	m.triggerLatency.WithLabelValues(jobType(meta)).Observe(milliseconds(took))
}

// milliseconds is d in milliseconds with its fraction. Dapr records whole
// milliseconds into OpenCensus buckets that hold the values below their bound,
// so 1000.4 ms is 1000, counted above le=1000; Prometheus's buckets hold the
// values up to their bound, so the truncated 1000 would be counted at le=1000.
// Untruncated, 1000.4 lands above le=1000 as in Dapr, for any whole-millisecond
// bound (Dapr's suite checks it: an app that sleeps exactly a second).
func milliseconds(d time.Duration) float64 {
	return float64(d) / float64(time.Millisecond)
}

// Undelivered counts a tick that found no sidecar to take it.
func (m *Metrics) Undelivered(meta *schedulerv1.JobMetadata) {
	m.jobsUndelivered.WithLabelValues(jobType(meta)).Inc()
}

// SidecarSendError and SidecarRecvError count stream errors.
func (m *Metrics) SidecarSendError() { m.sidecarErrors.WithLabelValues("send_failed").Inc() }

// SidecarRecvError counts a stream that failed to receive.
func (m *Metrics) SidecarRecvError() { m.sidecarErrors.WithLabelValues("recv_failed").Inc() }
