package placement

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are Dapr placement's metrics (dapr_placement_*) and the time
// dissemination rounds take.
type Metrics struct {
	runtimesTotal      *prometheus.GaugeVec
	actorRuntimesTotal *prometheus.GaugeVec
	leaderStatus       prometheus.Gauge
	raftLeaderStatus   prometheus.Gauge
	dissemination      *prometheus.HistogramVec
}

// NewMetrics registers the metrics with reg (none when reg is nil).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		runtimesTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dapr_placement_runtimes_total",
			Help: "The total number of runtimes reported to placement service."}, []string{"host_namespace"}),
		actorRuntimesTotal: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "dapr_placement_actor_runtimes_total",
			Help: "The total number of actor runtimes reported to placement service."}, []string{"host_namespace"}),
		leaderStatus: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dapr_placement_leader_status",
			Help: "Placement server leadership status (1 for leader, 0 for not leader)."}),
		raftLeaderStatus: prometheus.NewGauge(prometheus.GaugeOpts{Name: "dapr_placement_raft_leader_status",
			Help: "Raft server leadership status (1 for leader, 0 for not leader)."}),
		dissemination: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tandem_placement_dissemination_seconds",
			Help:    "Time from the lock to the last host's unlock acknowledgement of a dissemination round.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16)}, []string{"host_namespace"}),
	}
	if reg != nil {
		reg.MustRegister(m.runtimesTotal, m.actorRuntimesTotal, m.leaderStatus, m.raftLeaderStatus, m.dissemination)
	}
	return m
}

func (m *Metrics) runtimes(ns string, runtimes, actorRuntimes int) {
	m.runtimesTotal.WithLabelValues(ns).Set(float64(runtimes))
	m.actorRuntimesTotal.WithLabelValues(ns).Set(float64(actorRuntimes))
}

func (m *Metrics) disseminated(ns string, d time.Duration) {
	m.dissemination.WithLabelValues(ns).Observe(d.Seconds())
}

func (m *Metrics) leader(on bool) { m.leaderStatus.Set(b2f(on)) }

// RaftLeader records whether Raft made this replica its leader.
func (m *Metrics) RaftLeader(on bool) { m.raftLeaderStatus.Set(b2f(on)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
