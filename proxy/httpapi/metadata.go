package httpapi

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"

	"github.com/tandemrun/tandem/proxy/apierr"
)

// metadataJSON is daprd's GET /v1.0/metadata body. It is hand-shaped, not
// protojson: Dapr keeps field names and the flat subscriptions[].rules of
// its older releases, and clients (dapr list, dashboard, SDKs) read these.
type metadataJSON struct {
	ID                      string                                    `json:"id,omitempty"`
	RuntimeVersion          string                                    `json:"runtimeVersion,omitempty"`
	EnabledFeatures         []string                                  `json:"enabledFeatures,omitempty"`
	Actors                  []*runtimev1.ActiveActorsCount            `json:"actors,omitempty"`
	Components              []*runtimev1.RegisteredComponents         `json:"components,omitempty"`
	Extended                map[string]string                         `json:"extended,omitempty"`
	Subscriptions           []subscriptionJSON                        `json:"subscriptions,omitempty"`
	HTTPEndpoints           []*runtimev1.MetadataHTTPEndpoint         `json:"httpEndpoints,omitempty"`
	MCPServers              []*runtimev1.MetadataMCPServer            `json:"mcpServers,omitempty"`
	AppConnectionProperties appConnectionJSON                         `json:"appConnectionProperties,omitzero"`
	ActorRuntime            *actorRuntimeJSON                         `json:"actorRuntime,omitempty"`
	Scheduler               *runtimev1.MetadataScheduler              `json:"scheduler,omitempty"`
	Workflows               workflowsJSON                             `json:"workflows,omitzero"`
	Resiliencies            []*runtimev1.MetadataResiliency           `json:"resiliencies,omitempty"`
	WorkflowAccessPolicies  []*runtimev1.MetadataWorkflowAccessPolicy `json:"workflowAccessPolicies,omitempty"`
}

type workflowsJSON struct {
	ConnectedWorkers int32 `json:"connectedWorkers,omitempty"`
}

type subscriptionJSON struct {
	PubsubName      string             `json:"pubsubname"`
	Topic           string             `json:"topic"`
	Metadata        map[string]string  `json:"metadata,omitempty"`
	Rules           []subscriptionRule `json:"rules,omitempty"`
	DeadLetterTopic string             `json:"deadLetterTopic"`
	Type            string             `json:"type"`
}

type subscriptionRule struct {
	Match string `json:"match,omitempty"`
	Path  string `json:"path,omitempty"`
}

type appConnectionJSON struct {
	Port           int32          `json:"port,omitempty"`
	Protocol       string         `json:"protocol,omitempty"`
	ChannelAddress string         `json:"channelAddress,omitempty"`
	MaxConcurrency int32          `json:"maxConcurrency,omitempty"`
	Health         *appHealthJSON `json:"health,omitempty"`
}

type appHealthJSON struct {
	HealthCheckPath     string `json:"healthCheckPath,omitempty"`
	HealthProbeInterval string `json:"healthProbeInterval,omitempty"`
	HealthProbeTimeout  string `json:"healthProbeTimeout,omitempty"`
	HealthThreshold     int32  `json:"healthThreshold,omitempty"`
}

type actorRuntimeJSON struct {
	Status       string                         `json:"runtimeStatus"`
	ActiveActors []*runtimev1.ActiveActorsCount `json:"activeActors,omitempty"`
	HostReady    bool                           `json:"hostReady"`
	Placement    string                         `json:"placement,omitempty"`
}

// MetadataJSON renders a metadata response in daprd's HTTP shape.
func MetadataJSON(m *runtimev1.GetMetadataResponse) ([]byte, error) {
	out := metadataJSON{
		ID:              m.GetId(),
		RuntimeVersion:  m.GetRuntimeVersion(),
		EnabledFeatures: m.GetEnabledFeatures(),
		//lint:ignore SA1019 Dapr still serves the actors list
		Actors:                 m.GetActiveActorsCount(),
		Components:             m.GetRegisteredComponents(),
		Extended:               m.GetExtendedMetadata(),
		HTTPEndpoints:          m.GetHttpEndpoints(),
		MCPServers:             m.GetMcpServers(),
		Scheduler:              m.GetScheduler(),
		Workflows:              workflowsJSON{ConnectedWorkers: m.GetWorkflows().GetConnectedWorkers()},
		Resiliencies:           m.GetResiliencies(),
		WorkflowAccessPolicies: m.GetWorkflowAccessPolicies(),
	}
	if acp := m.GetAppConnectionProperties(); acp != nil {
		out.AppConnectionProperties = appConnectionJSON{
			Port:           acp.GetPort(),
			Protocol:       acp.GetProtocol(),
			ChannelAddress: acp.GetChannelAddress(),
			MaxConcurrency: acp.GetMaxConcurrency(),
		}
		if hp := acp.GetHealth(); hp != nil {
			out.AppConnectionProperties.Health = &appHealthJSON{
				HealthCheckPath:     hp.GetHealthCheckPath(),
				HealthProbeInterval: hp.GetHealthProbeInterval(),
				HealthProbeTimeout:  hp.GetHealthProbeTimeout(),
				HealthThreshold:     hp.GetHealthThreshold(),
			}
		}
	}
	for _, s := range m.GetSubscriptions() {
		sj := subscriptionJSON{
			PubsubName:      s.GetPubsubName(),
			Topic:           s.GetTopic(),
			Metadata:        s.GetMetadata(),
			DeadLetterTopic: s.GetDeadLetterTopic(),
			Type:            s.GetType().String(),
		}
		for _, r := range s.GetRules().GetRules() {
			sj.Rules = append(sj.Rules, subscriptionRule{Match: r.GetMatch(), Path: r.GetPath()})
		}
		out.Subscriptions = append(out.Subscriptions, sj)
	}
	if ar := m.GetActorRuntime(); ar != nil {
		out.ActorRuntime = &actorRuntimeJSON{
			Status:       ar.GetRuntimeStatus().String(),
			ActiveActors: ar.GetActiveActors(),
			HostReady:    ar.GetHostReady(),
			Placement:    ar.GetPlacement(),
		}
	}
	return json.Marshal(out)
}

func (h *Handler) getMetadata(w http.ResponseWriter, r *http.Request) {
	var m *runtimev1.GetMetadataResponse
	if h.cfg.Metadata != nil {
		m = h.cfg.Metadata(r.Context())
	}
	if m == nil {
		m = &runtimev1.GetMetadataResponse{}
	}
	if m.GetId() == "" {
		m.Id = h.cfg.AppID
	}
	body, err := MetadataJSON(m)
	if err != nil {
		apierr.WriteHTTP(w, apierr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func (h *Handler) putMetadata(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		if errors.Is(err, errBodyTooLarge) {
			apierr.WriteHTTP(w, apierr.BodyTooLarge(h.cfg.MaxRequestBodySize))
			return
		}
		apierr.WriteHTTP(w, apierr.BodyRead(err))
		return
	}
	if key := r.PathValue("key"); key != "" && h.cfg.SetMetadata != nil {
		h.cfg.SetMetadata(r.Context(), key, string(body))
	}
	w.WriteHeader(http.StatusNoContent)
}
