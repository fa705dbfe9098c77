{{/* The image of one binary: <repository>/<binary>:<tag>. */}}
{{- define "tandem.image" -}}
{{ .root.Values.image.repository }}/{{ .binary }}:{{ .root.Values.image.tag | default .root.Chart.AppVersion }}
{{- end }}

{{/* Labels every object of the release carries. */}}
{{- define "tandem.labels" -}}
app.kubernetes.io/part-of: tandem
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Replicas of a control-plane Deployment: ha.replicaCount in HA mode, else the service's own. */}}
{{- define "tandem.replicas" -}}
{{ if .root.Values.ha.enabled }}{{ .root.Values.ha.replicaCount }}{{ else }}{{ .svc.replicaCount }}{{ end }}
{{- end }}

{{/* Sentry's address inside the cluster, as sidecars and the control plane dial it. */}}
{{- define "tandem.sentryAddress" -}}
dapr-sentry.{{ .Release.Namespace }}.svc.cluster.local:443
{{- end }}

{{/* The pod-level settings every control-plane pod shares: scheduling and security. */}}
{{- define "tandem.podSpec" -}}
{{- $nodeSelector := .svc.nodeSelector | default .root.Values.nodeSelector }}
{{- $tolerations := .svc.tolerations | default .root.Values.tolerations }}
serviceAccountName: {{ .serviceAccount }}
securityContext:
  runAsNonRoot: true
  seccompProfile:
    type: RuntimeDefault
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- if .root.Values.ha.enabled }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app: {{ .app }}
{{- end }}
{{- end }}

{{/* The container-level settings every control-plane container shares. */}}
{{- define "tandem.containerCommon" -}}
{{- $resources := .svc.resources | default .root.Values.resources }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- with $resources }}
resources:
  {{- toYaml . | nindent 2 }}
{{- end }}
livenessProbe:
  httpGet:
    path: /healthz
    port: 8080
  initialDelaySeconds: 3
  periodSeconds: 3
  failureThreshold: 5
readinessProbe:
  httpGet:
    path: /healthz
    port: 8080
  initialDelaySeconds: 3
  periodSeconds: 3
  failureThreshold: 5
{{- end }}

{{/* The log and metrics flags every control-plane binary takes, as Dapr's do. */}}
{{- define "tandem.commonArgs" -}}
- "--log-level"
- {{ .Values.logLevel | quote }}
{{- if .Values.logAsJson }}
- "--log-as-json"
{{- end }}
{{- if .Values.metrics.enabled }}
- "--enable-metrics"
- "--metrics-port"
- {{ .Values.metrics.port | quote }}
{{- else }}
- "--enable-metrics=false"
{{- end }}
{{- end }}

{{/* A PodDisruptionBudget for a control-plane Deployment in HA mode. */}}
{{- define "tandem.pdb" -}}
{{- if .root.Values.ha.enabled }}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ .app }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    app: {{ .app }}
    {{- include "tandem.labels" .root | nindent 4 }}
spec:
  maxUnavailable: 1
  selector:
    matchLabels:
      app: {{ .app }}
{{- end }}
{{- end }}
