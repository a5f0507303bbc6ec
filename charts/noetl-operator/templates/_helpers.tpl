{{/* Names, labels and the RBAC rules shared by the chart's templates. */}}

{{- define "noetl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "noetl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "noetl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "noetl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "noetl.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "noetl.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "noetl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "noetl.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "noetl.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
What the operator does in a namespace it watches: drive Executions, read Playbooks, start the
Executions of CronPlaybooks (and cancel or delete them by their policies), run step
Jobs and read their pods' termination messages and logs, keep large results in ConfigMaps, and
post Events (kopf uses the core API, the operator events.k8s.io). A ClusterRole in cluster-wide
mode, a Role per watched namespace otherwise.
*/}}
{{- define "noetl.namespacedRules" -}}
- apiGroups: [noetl.io]
  resources: [executions]
  verbs: [get, list, watch, create, delete, patch]
# Executions a CronPlaybook starts block its deletion until they are gone (blockOwnerDeletion).
- apiGroups: [noetl.io]
  resources: [cronplaybooks/finalizers]
  verbs: [update]
- apiGroups: [noetl.io]
  resources: [executions/status, playbooks/status, cronplaybooks/status]
  verbs: [get, patch]
- apiGroups: [noetl.io]
  resources: [playbooks, cronplaybooks]
  verbs: [get, list, watch]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}

{{/* kopf reads the CRDs to learn which resources exist, wherever the operator watches. */}}
{{- define "noetl.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end -}}

{{/* kopf keeps its peers' heartbeats in the status of the peering object. */}}
{{- define "noetl.peeringVerbs" -}}
verbs: [get, list, watch, patch]
{{- end -}}
