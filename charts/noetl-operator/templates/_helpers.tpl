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
What the operator does in a namespace it watches, and no more (every verb is one that
noetl/kube/api.py or kopf's watches call): drive Executions (child Executions created and
deleted), read Playbooks, start the Executions of CronPlaybooks (cancel them by a patch of
spec.cancel under concurrencyPolicy Replace, delete them past the history limits), run step
Jobs, watch and list their pods to read termination messages and logs, keep results in
ConfigMaps, post core Events (kopf and the operator both). No Secrets: steps get theirs from
the kubelet. A ClusterRole in cluster-wide mode, a Role per watched namespace
otherwise.
*/}}
{{- define "noetl.namespacedRules" -}}
- apiGroups: [noetl.io]
  resources: [executions]
  verbs: [get, list, watch, create, delete, patch]
- apiGroups: [noetl.io]
  resources: [playbooks, cronplaybooks]
  verbs: [get, list, watch]
- apiGroups: [noetl.io]
  resources: [executions/status, playbooks/status, cronplaybooks/status]
  verbs: [patch]
# The Executions a CronPlaybook starts hold up its deletion (blockOwnerDeletion) until gone.
- apiGroups: [noetl.io]
  resources: [cronplaybooks/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods/log]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, create, patch]
- apiGroups: [""]
  resources: [events]
  # list: a step's Job with no pod says why (a quota, admission) only in its FailedCreate Events.
  verbs: [create, list]
{{- end -}}

{{/* kopf watches the CRDs to learn which resources exist when it scans (all namespaces). */}}
{{- define "noetl.crdRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [get, list, watch]
{{- end -}}

{{/* kopf keeps its peers' heartbeats in the status of the peering object. */}}
{{- define "noetl.peeringVerbs" -}}
verbs: [get, list, watch, patch]
{{- end -}}
