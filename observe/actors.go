package observe

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// actorMetrics count the actor reminders the scheduler fired on this
// sidecar, as daprd's dapr_runtime_actor_reminders_fired_total.
type actorMetrics struct {
	remindersFired *prometheus.CounterVec
	appID          string
}

func newActorMetrics(appID string) *actorMetrics {
	return &actorMetrics{
		remindersFired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "dapr_runtime_actor_reminders_fired_total",
			Help: "The number of actor reminders fired requests."}, []string{"app_id", "actor_type", "success"}),
		appID: appID,
	}
}

// ActorReminderFired records one reminder the scheduler triggered on an
// actor of actorType here; success: the actor took it.
func (m *Metrics) ActorReminderFired(actorType string, success bool) {
	if m == nil || m.actors == nil {
		return
	}
	m.actors.remindersFired.WithLabelValues(m.actors.appID, actorType, strconv.FormatBool(success)).Inc()
}
