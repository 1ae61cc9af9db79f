{{/*
Names. Dots become dashes: an edge's id is its pod name (--edge-id $(POD_NAME)), and edge ids
are [A-Za-z0-9_-]{1,64} (bus::ValidNodeId). The API server truncates generated pod names to 63
characters, so the length always fits.
*/}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | replace "." "-" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "switchboard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | replace "." "-" | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | replace "." "-" | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | replace "." "-" | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
A component's resource name: FULLNAME-COMPONENT, within 63 characters (or .max: a StatefulSet's
name stays within 52, as its pods' controller-revision-hash label adds 11).
*/}}
{{- define "switchboard.componentName" -}}
{{- $max := int (default 63 .max) }}
{{- $full := include "switchboard.fullname" .root | trunc (int (sub (sub $max 1) (len .component))) | trimSuffix "-" }}
{{- printf "%s-%s" $full .component }}
{{- end }}

{{/* The bundled NATS: its StatefulSet and client Service share this name. */}}
{{- define "switchboard.natsName" -}}
{{- include "switchboard.componentName" (dict "root" . "component" "nats" "max" 52) }}
{{- end }}

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: switchboard
{{- end }}

{{/* Labels and selector labels of one component: (dict "root" $ "component" "edge"). */}}
{{- define "switchboard.componentLabels" -}}
{{ include "switchboard.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "switchboard.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The Secret with the gRPC API tokens: the user's, or the one this chart creates. */}}
{{- define "switchboard.apiTokensSecret" -}}
{{- default (include "switchboard.componentName" (dict "root" . "component" "api-tokens")) .Values.broker.api.tokens.existingSecret }}
{{- end }}

{{/* Where the NATS URL comes from: the bundled cluster's client Service, or nats.external. */}}
{{- define "switchboard.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s.%s.svc.%s:%d" (include "switchboard.natsName" .) .Release.Namespace .Values.clusterDomain (int .Values.nats.ports.client) }}
{{- else }}
{{- .Values.nats.external.url }}
{{- end }}
{{- end }}

{{/* The NATS_URL variable: every switchboard process gets --nats $(NATS_URL). */}}
{{- define "switchboard.natsUrlEnv" -}}
- name: NATS_URL
{{- if and (not .Values.nats.enabled) .Values.nats.external.existingSecret }}
  valueFrom:
    secretKeyRef:
      name: {{ .Values.nats.external.existingSecret }}
      key: {{ .Values.nats.external.secretKey }}
{{- else }}
  value: {{ include "switchboard.natsUrl" . | quote }}
{{- end }}
{{- end }}

{{/* POD_NAME and POD_NAMESPACE from the downward API. */}}
{{- define "switchboard.podEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/* The admin port's probes: (dict "root" $ "values" .Values.edge). */}}
{{- define "switchboard.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml .values.startupProbe | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: admin
  {{- toYaml .values.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: admin
  {{- toYaml .values.readinessProbe | nindent 2 }}
{{- end }}

{{/* Preferred spreading over nodes, unless the values give an affinity. */}}
{{- define "switchboard.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "switchboard.selectorLabels" . | nindent 12 }}
{{- end }}
{{- end }}

{{/* Scheduling fields shared by every pod: (dict "root" $ "component" "edge" "values" .Values.edge). */}}
{{- define "switchboard.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
  {{- include "switchboard.affinity" . | trim | nindent 2 }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Checks of combinations that the schema cannot express; each stops the render with a message.
Included by the edge Deployment, which every configuration renders.
*/}}
{{- define "switchboard.validate" -}}
{{- if and (not .Values.nats.enabled) (not .Values.nats.external.url) (not .Values.nats.external.existingSecret) }}
{{- fail "nats.enabled is false: set nats.external.url or nats.external.existingSecret" }}
{{- end }}
{{- $api := .Values.broker.api }}
{{- if not (or $api.tokens.enabled (and $api.tls.enabled $api.tls.clientAuth)) }}
{{- fail "broker.api: the gRPC API listens on the pod network and needs authentication: broker.api.tokens.enabled, or broker.api.tls.enabled with broker.api.tls.clientAuth" }}
{{- end }}
{{- if and $api.tls.enabled (not $api.tls.existingSecret) }}
{{- fail "broker.api.tls.enabled: set broker.api.tls.existingSecret (a Secret with tls.crt, tls.key and, for clientAuth, ca.crt)" }}
{{- end }}
{{- if and $api.tls.clientAuth (not $api.tls.enabled) }}
{{- fail "broker.api.tls.clientAuth needs broker.api.tls.enabled" }}
{{- end }}
{{- if and .Values.edge.jwt.env (not .Values.edge.jwt.existingSecret) }}
{{- fail "edge.jwt.env names keys of edge.jwt.existingSecret: set it" }}
{{- end }}
{{- if le (int .Values.cluster.edgeTimeoutMs) (int .Values.cluster.heartbeatMs) }}
{{- fail "cluster.edgeTimeoutMs must be more than cluster.heartbeatMs (brokers would drop live edges)" }}
{{- end }}
{{- if and .Values.edge.autoscaling.enabled (gt (int .Values.edge.autoscaling.minReplicas) (int .Values.edge.autoscaling.maxReplicas)) }}
{{- fail "edge.autoscaling.minReplicas is more than edge.autoscaling.maxReplicas" }}
{{- end }}
{{- $recovery := include "switchboard.recoveryNamespaces" . }}
{{- if and $recovery .Values.nats.enabled }}
{{- $replicas := int .Values.recovery.jetstream.replicas }}
{{- if not .Values.nats.jetstream.enabled }}
{{- fail (printf "config.namespaces %s: connectionStateRecovery needs JetStream but nats.jetstream.enabled is false (the edges would refuse to start): set it to true" $recovery) }}
{{- end }}
{{- if gt $replicas (int .Values.nats.replicas) }}
{{- fail (printf "recovery.jetstream.replicas is %d but the bundled NATS has %d node(s) (nats.replicas): JetStream cannot place the recovery streams of config.namespaces %s; lower recovery.jetstream.replicas or raise nats.replicas" $replicas (int .Values.nats.replicas) $recovery) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
The names of the config's namespaces with connectionStateRecovery, comma-separated; empty when
none. Their edges need JetStream (services/CONFIG.md).
*/}}
{{- define "switchboard.recoveryNamespaces" -}}
{{- $names := list }}
{{- range $name, $policy := .Values.config.namespaces }}
{{- if and (kindIs "map" $policy) (hasKey $policy "connectionStateRecovery") }}
{{- $names = append $names $name }}
{{- end }}
{{- end }}
{{- join ", " $names }}
{{- end }}

{{/* A PodDisruptionBudget's budget: minAvailable when set, else maxUnavailable (a count or "N%"). */}}
{{- define "switchboard.intOrString" -}}
{{- if kindIs "string" . }}{{ . | quote }}{{ else }}{{ int . }}{{ end }}
{{- end }}

{{- define "switchboard.pdbBudget" -}}
{{- if and (hasKey . "minAvailable") (not (kindIs "invalid" .minAvailable)) }}
minAvailable: {{ include "switchboard.intOrString" .minAvailable }}
{{- else }}
maxUnavailable: {{ include "switchboard.intOrString" (default 1 .maxUnavailable) }}
{{- end }}
{{- end }}
