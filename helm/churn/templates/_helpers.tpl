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
{{- end }}
