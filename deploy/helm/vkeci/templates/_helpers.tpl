{{/* The release's full name: the release name when it already contains the chart's name. */}}
{{- define "vkeci.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "vkeci.serviceAccountName" -}}
{{- default (include "vkeci.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "vkeci.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/part-of: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "vkeci.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: daemon
{{- end -}}

{{/* The Secret the daemon's environment comes from, or "" for the Alibaba Cloud credential chain. */}}
{{- define "vkeci.credentialsSecret" -}}
{{- if .Values.credentials.accessKeyId -}}
{{- printf "%s-credentials" (include "vkeci.fullname" .) -}}
{{- else -}}
{{- .Values.credentials.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* The config file: the settings that have a value (false counts as a value). */}}
{{- define "vkeci.config" -}}
{{- range $key, $value := .Values.settings }}
{{- if or (kindIs "bool" $value) (not (empty $value)) }}
{{ $key }}: {{ toJson $value }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "vkeci.tlsMode" -}}
{{- $modes := list "selfSigned" "csr" "csrApprove" "secret" -}}
{{- if not (has .Values.tls.mode $modes) -}}
{{- fail (printf "tls.mode %q is not one of %s" .Values.tls.mode (join ", " $modes)) -}}
{{- end -}}
{{- if and (eq .Values.tls.mode "secret") (not .Values.tls.secretName) -}}
{{- fail "tls.mode is secret but tls.secretName is empty: name a kubernetes.io/tls Secret in the release namespace" -}}
{{- end -}}
{{- .Values.tls.mode -}}
{{- end -}}

{{/* The admission webhook's objects (webhook.enabled): its Deployment, ServiceAccount, Service, RBAC. */}}
{{- define "vkeci.webhookName" -}}
{{- printf "%s-webhook" (include "vkeci.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "vkeci.webhookSelectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}
