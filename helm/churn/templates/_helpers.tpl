{{/*
Names, labels and the render-time checks of the churn chart.
*/}}

{{/*
The chart name (or nameOverride).
*/}}
{{- define "churn.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 45 | trimSuffix "-" }}
{{- end }}

{{/*
The full name: the InferenceService's name, and so its host name. At most 45 characters:
Knative names the revision <name>-predictor-00001, which must stay a 63-character DNS label.
*/}}
{{- define "churn.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 45 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 45 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "churn.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every resource.
*/}}
{{- define "churn.labels" -}}
helm.sh/chart: {{ include "churn.chart" . }}
{{ include "churn.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: churn-platform
{{- end }}

{{/*
Labels that select this release's pods (kubectl get pods -l ...).
*/}}
{{- define "churn.selectorLabels" -}}
app.kubernetes.io/name: {{ include "churn.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels that select this release's model pods (the predictor): NetworkPolicy, Istio policies,
monitors.
*/}}
{{- define "churn.predictorSelectorLabels" -}}
{{ include "churn.selectorLabels" . }}
app.kubernetes.io/component: predictor
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "churn.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "churn.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The serving image reference.
*/}}
{{- define "churn.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
True (non-empty) when a canary share is set; 0 is a valid share (a rollback).
*/}}
{{- define "churn.canary" -}}
{{- if not (kindIs "invalid" .Values.canary.trafficPercent) }}true{{ end }}
{{- end }}

{{/*
Where the payload logger posts: the Broker of the release namespace at Knative Eventing's
broker ingress, or logger.url (checked in churn.validateLogger).
*/}}
{{- define "churn.loggerUrl" -}}
{{- if .Values.logger.url }}
{{- .Values.logger.url }}
{{- else }}
{{- printf "http://broker-ingress.%s.svc.cluster.local/%s/%s" .Values.cluster.eventingNamespace .Release.Namespace .Values.logger.broker }}
{{- end }}
{{- end }}

{{/*
The Entra ID issuer of the tenant's v2.0 tokens, and its signing keys.
*/}}
{{- define "churn.issuer" -}}
{{- printf "https://login.microsoftonline.com/%s/v2.0" .Values.auth.tenantId }}
{{- end }}

{{- define "churn.jwksUri" -}}
{{- printf "https://login.microsoftonline.com/%s/discovery/v2.0/keys" .Values.auth.tenantId }}
{{- end }}

{{/*
The `for` of the sustained-drift alert, in minutes: the flag must stay 1 from the first
flagged window through the Nth, that is (N - 1) windows and half of the Nth (a flag that
drops at the Nth window's verdict resets it).
*/}}
{{- define "churn.driftFor" -}}
{{- $w := int .Values.prometheusRule.drift.windowMinutes }}
{{- printf "%dm" (add (mul (sub (int .Values.prometheusRule.drift.windows) 1) $w) (div $w 2)) }}
{{- end }}

{{/*
The payload logger posts every customer's attributes: only inside the release namespace.
Accepted: a Broker of the namespace at the broker ingress, a Service of the namespace
(<svc>.<ns>[.svc[.cluster.local]]), or a bare Service name (resolved in the pod's namespace).
*/}}
{{- define "churn.validateLogger" -}}
{{- $l := .Values.logger }}
{{- $ns := .Release.Namespace }}
{{- if $l.enabled }}
{{- if and $l.url $l.broker }}
{{- fail (printf "logger.url (%s) and logger.broker (%s) are both set: the logger posts to one place; set logger.broker to \"\" to post to the URL" $l.url $l.broker) }}
{{- end }}
{{- if not (or $l.url $l.broker) }}
{{- fail "logger.enabled with neither logger.broker nor logger.url: name the Broker of the release namespace that receives the CloudEvents, or disable the logger" }}
{{- end }}
{{- if $l.url }}
{{- $u := urlParse $l.url }}
{{- $hostname := regexReplaceAll ":[0-9]+$" $u.host "" }}
{{- $inNamespace := false }}
{{- $ingress := printf "^broker-ingress\\.%s(\\.svc(\\.cluster\\.local)?)?$" .Values.cluster.eventingNamespace }}
{{- if regexMatch $ingress $hostname }}
{{- $inNamespace = regexMatch (printf "^/%s/[a-z0-9]([-a-z0-9]*[a-z0-9])?/?$" $ns) $u.path }}
{{- else if regexMatch (printf "^[a-z0-9]([-a-z0-9]*[a-z0-9])?\\.%s(\\.svc(\\.cluster\\.local)?)?$" $ns) $hostname }}
{{- $inNamespace = true }}
{{- else if regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $hostname }}
{{- $inNamespace = true }}
{{- end }}
{{- if not $inNamespace }}
{{- fail (printf "logger.url %s points outside namespace %s: the CloudEvents carry every customer's attributes and must stay in the namespace; use a Broker of the namespace (logger.broker, or http://broker-ingress.%s.svc.cluster.local/%s/<broker>) or a Service of it (http://<service>.%s.svc.cluster.local/...)" $l.url $ns .Values.cluster.eventingNamespace $ns $ns) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Settings that conflict fail here, each with the keys involved and what to do
(README.md, "Settings that conflict"). Ranges and types are values.schema.json's job.
*/}}
{{- define "churn.validate" -}}
{{- $fullname := include "churn.fullname" . }}
{{- if not (regexMatch "^[a-z]([-a-z0-9]*[a-z0-9])?$" $fullname) }}
{{- fail (printf "the InferenceService name %q must start with a letter and hold only lower-case letters, digits and '-' (KServe's rule): choose another release name or set fullnameOverride" $fullname) }}
{{- end }}
{{- $storage := .Values.bundle.storageUri }}
{{- $registry := .Values.bundle.registryUri }}
{{- if and $storage $registry }}
{{- fail (printf "bundle.storageUri (%s) and bundle.registryUri (%s) are both set: the server loads one bundle; set exactly one" $storage $registry) }}
{{- end }}
{{- if not (or $storage $registry) }}
{{- fail "no model bundle: set bundle.storageUri (the bundle on Azure Blob, https://<account>.blob.core.windows.net/<container>/<path>) or bundle.registryUri (models:/churn@champion)" }}
{{- end }}
{{- if hasPrefix "az://" $storage }}
{{- fail (printf "bundle.storageUri %s: KServe's storage initializer does not read az:// URIs; give the same blob as https://<account>.blob.core.windows.net/<container>/<path>" $storage) }}
{{- end }}
{{- if and $registry (not .Values.mlflow.trackingUri) }}
{{- fail (printf "bundle.registryUri %s needs mlflow.trackingUri: the pods resolve the registry URI against that MLflow server" $registry) }}
{{- end }}
{{- if and (include "churn.canary" .) (contains "@" $registry) }}
{{- fail (printf "canary.trafficPercent=%v with bundle.registryUri %s: a registry alias is resolved when each pod starts, so the canary and the stable revision could serve the same model; give the new bundle as bundle.storageUri or a registry version (models:/<name>/<version>)" .Values.canary.trafficPercent $registry) }}
{{- end }}
{{- $min := int .Values.autoscaling.minReplicas }}
{{- $max := int .Values.autoscaling.maxReplicas }}
{{- if and (gt $max 0) (gt $min $max) }}
{{- fail (printf "autoscaling.minReplicas (%d) is above autoscaling.maxReplicas (%d)" $min $max) }}
{{- end }}
{{- $sa := .Values.serviceAccount }}
{{- if and (not $sa.create) (not $sa.name) }}
{{- fail "serviceAccount.create is false but serviceAccount.name is empty: name the existing ServiceAccount the pods should run as" }}
{{- end }}
{{- $wi := $sa.workloadIdentity }}
{{- if and $wi.clientId (not $wi.enabled) }}
{{- fail "serviceAccount.workloadIdentity.clientId is set but serviceAccount.workloadIdentity.enabled is false: enable it, or remove the client id" }}
{{- end }}
{{- if and $wi.enabled $sa.create (not $wi.clientId) }}
{{- fail "serviceAccount.workloadIdentity.enabled needs serviceAccount.workloadIdentity.clientId: the client id of the managed identity that may read the bundle" }}
{{- end }}
{{- if hasKey $sa.annotations "azure.workload.identity/client-id" }}
{{- fail "serviceAccount.annotations holds azure.workload.identity/client-id: set serviceAccount.workloadIdentity.clientId (and enabled) instead" }}
{{- end }}
{{- if and $wi.clientId (not $sa.create) }}
{{- fail (printf "serviceAccount.workloadIdentity.clientId is set but serviceAccount.create is false: this chart cannot annotate ServiceAccount %q; put azure.workload.identity/client-id on it yourself and leave clientId empty" $sa.name) }}
{{- end }}
{{- if and (include "churn.canary" .) .Release.IsInstall }}
{{- fail (printf "canary.trafficPercent=%v on a first install: there is no previous model (no rolled-out revision) to share the traffic with; install without canary.trafficPercent, then upgrade with the new bundle and the share (helm template: add --is-upgrade)" .Values.canary.trafficPercent) }}
{{- end }}
{{- include "churn.validateLogger" . }}
{{- include "churn.validatePlatform" . }}
{{- $auth := .Values.auth }}
{{- if and $auth.enabled (not $auth.tenantId) }}
{{- fail "auth.enabled needs auth.tenantId: the Entra tenant whose tokens are accepted (issuer https://login.microsoftonline.com/<tenant>/v2.0)" }}
{{- end }}
{{- if and $auth.enabled (not $auth.audiences) }}
{{- fail "auth.enabled needs auth.audiences: without an audience Istio accepts any token of the tenant, whatever application it was issued for; give the client id of the API's app registration" }}
{{- end }}
{{- if and (not $auth.enabled) (or $auth.tenantId $auth.audiences) }}
{{- fail "auth.tenantId or auth.audiences is set but auth.enabled is false: the model would answer without a token; enable auth, or remove them" }}
{{- end }}
{{- $m := .Values.metrics }}
{{- if and $m.podMonitor.enabled $m.serviceMonitor.enabled }}
{{- fail "metrics.podMonitor.enabled and metrics.serviceMonitor.enabled are both true: Prometheus would scrape every pod twice; choose one" }}
{{- end }}
{{- if and $m.prometheusScraping (or $m.podMonitor.enabled $m.serviceMonitor.enabled) }}
{{- fail "metrics.prometheusScraping with metrics.podMonitor.enabled or metrics.serviceMonitor.enabled: the pods would be scraped twice (annotations and monitor); set metrics.prometheusScraping to false" }}
{{- end }}
{{- $np := .Values.networkPolicy }}
{{- if and $np.enabled (not $np.prometheus.namespace) (or $m.prometheusScraping $m.podMonitor.enabled $m.serviceMonitor.enabled) }}
{{- fail "networkPolicy.enabled with networkPolicy.prometheus.namespace empty while metrics are scraped (metrics.prometheusScraping, metrics.podMonitor.enabled or metrics.serviceMonitor.enabled): the NetworkPolicy would keep Prometheus out; name its namespace" }}
{{- end }}
{{- end }}

{{/*
The drift service: its name, labels, image, the bundle it judges traffic against, and its
database URL (a file on the claim for SQLite).
*/}}
{{- define "churn.monitorName" -}}
{{- printf "%s-monitor" (include "churn.fullname" .) }}
{{- end }}

{{- define "churn.monitorSelectorLabels" -}}
{{ include "churn.selectorLabels" . }}
app.kubernetes.io/component: monitor
{{- end }}

{{- define "churn.monitorImage" -}}
{{- printf "%s:%s" .Values.monitor.image.repository (default .Chart.AppVersion .Values.monitor.image.tag) }}
{{- end }}

{{- define "churn.monitorModelUri" -}}
{{- coalesce .Values.monitor.modelUri .Values.bundle.registryUri .Values.bundle.storageUri }}
{{- end }}

{{- define "churn.monitorClaim" -}}
{{- default (printf "%s-data" (include "churn.monitorName" .)) .Values.monitor.database.persistence.existingClaim }}
{{- end }}

{{/*
Whether the Broker's Triggers deliver to the drift service: it is installed and the logger
posts to a Broker (with logger.url the logger posts there directly).
*/}}
{{- define "churn.monitorTriggers" -}}
{{- if and .Values.monitor.enabled .Values.logger.enabled .Values.logger.broker (not .Values.logger.url) }}true{{ end }}
{{- end }}

{{/*
The rollout controller: its name, labels, ServiceAccount and image.
*/}}
{{- define "churn.rolloutName" -}}
{{- printf "%s-rollout" (include "churn.fullname" .) }}
{{- end }}

{{- define "churn.rolloutSelectorLabels" -}}
{{ include "churn.selectorLabels" . }}
app.kubernetes.io/component: rollout
{{- end }}

{{- define "churn.rolloutImage" -}}
{{- printf "%s:%s" .Values.rollout.image.repository (default .Chart.AppVersion .Values.rollout.image.tag) }}
{{- end }}

{{/*
The hardening every container of the chart carries (the predictor's is in its template: Knative
accepts exactly these fields there), and the pod-level settings of the Deployment and the Job.
*/}}
{{- define "churn.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "churn.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ int .Values.securityContext.runAsUser }}
runAsGroup: {{ int .Values.securityContext.runAsGroup }}
fsGroup: {{ int .Values.securityContext.runAsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
Conflicts of the drift service's and the rollout controller's values.
*/}}
{{- define "churn.validatePlatform" -}}
{{- $mon := .Values.monitor }}
{{- if $mon.enabled }}
{{- if not .Values.logger.enabled }}
{{- fail "monitor.enabled with logger.enabled false: the drift service would receive no events; enable the logger (to a Broker), or set monitor.enabled to false" }}
{{- end }}
{{- if eq $mon.launch "kfp" }}
{{- $names := list }}
{{- range $mon.env }}{{ $names = append $names .name }}{{ end }}
{{- if not (has "CHURN_KFP_ENDPOINT" $names) }}
{{- fail "monitor.launch kfp needs CHURN_KFP_ENDPOINT in monitor.env: the Kubeflow Pipelines API the trigger submits its training run to" }}
{{- end }}
{{- end }}
{{- if and (hasPrefix "models:/" (include "churn.monitorModelUri" .)) (not .Values.mlflow.trackingUri) }}
{{- fail (printf "the drift service's bundle %s is a registry URI but mlflow.trackingUri is empty: name the MLflow server it is resolved against" (include "churn.monitorModelUri" .)) }}
{{- end }}
{{- $db := $mon.database }}
{{- if eq $db.type "postgresql" }}
{{- if not $db.postgresql.existingSecret }}
{{- fail "monitor.database.type postgresql needs monitor.database.postgresql.existingSecret: the Secret holding the SQLAlchemy URL (postgresql+psycopg://...) under monitor.database.postgresql.key" }}
{{- end }}
{{- if $db.persistence.existingClaim }}
{{- fail (printf "monitor.database.persistence.existingClaim (%s) with monitor.database.type postgresql: the claim holds a SQLite file the service would not use; remove it, or use sqlite" $db.persistence.existingClaim) }}
{{- end }}
{{- else if $db.postgresql.existingSecret }}
{{- fail (printf "monitor.database.postgresql.existingSecret (%s) with monitor.database.type sqlite: the PostgreSQL URL would be ignored; set monitor.database.type to postgresql, or remove the Secret name" $db.postgresql.existingSecret) }}
{{- end }}
{{- range $mon.env }}
{{- if or (eq .name "CHURN_MONITOR_DB_URL") (eq .name "CHURN_MONITOR_PORT") }}
{{- fail (printf "monitor.env sets %s, which the chart sets from monitor.database / monitor.port; set those instead" .name) }}
{{- end }}
{{- end }}
{{- end }}
{{- $ro := .Values.rollout }}
{{- if $ro.job.storageUri }}
{{- if not $ro.enabled }}
{{- fail "rollout.job.storageUri with rollout.enabled false: the Job needs the controller's ServiceAccount and Role; enable rollout" }}
{{- end }}
{{- if not $ro.prometheusUrl }}
{{- fail "rollout.job.storageUri needs rollout.prometheusUrl: the gates query the canary's and the stable revision's metrics there" }}
{{- end }}
{{- if hasPrefix "az://" $ro.job.storageUri }}
{{- fail (printf "rollout.job.storageUri %s: KServe's storage initializer does not read az:// URIs; give the same blob as https://<account>.blob.core.windows.net/<container>/<path>" $ro.job.storageUri) }}
{{- end }}
{{- if eq $ro.job.storageUri .Values.bundle.storageUri }}
{{- fail (printf "rollout.job.storageUri equals bundle.storageUri (%s): the controller rolls out a new bundle over the stable one; give the new bundle's URI" $ro.job.storageUri) }}
{{- end }}
{{- if include "churn.canary" . }}
{{- fail (printf "rollout.job.storageUri with canary.trafficPercent=%v: the controller sets the canary's share itself; leave canary.trafficPercent unset" .Values.canary.trafficPercent) }}
{{- end }}
{{- if .Values.bundle.registryUri }}
{{- fail "rollout.job.storageUri with bundle.registryUri: the controller rolls out by storageUri; serve the stable bundle by bundle.storageUri too" }}
{{- end }}
{{- end }}
{{- if and (not $ro.enabled) $ro.extraSubjects }}
{{- fail "rollout.extraSubjects with rollout.enabled false: there is no Role to bind them to; enable rollout, or remove them" }}
{{- end }}
{{- end }}
