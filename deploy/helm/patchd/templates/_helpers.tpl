{{/* The chart name, or nameOverride. */}}
{{- define "patchd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or just <release> when it already names the chart. */}}
{{- define "patchd.fullname" -}}
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

{{- define "patchd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "patchd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "patchd.labels" -}}
{{ include "patchd.selectorLabels" . }}
app.kubernetes.io/part-of: patchd
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "patchd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "patchd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "patchd.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "patchd.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "patchd.fullname" .)) .Values.tls.secretName -}}
{{- end -}}

{{- define "patchd.envSecretName" -}}
{{- default (printf "%s-env" (include "patchd.fullname" .)) .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "patchd.claimName" -}}
{{- default (printf "%s-data" (include "patchd.fullname" .)) .Values.persistence.existingClaim -}}
{{- end -}}

{{/* Namespaces the webhooks never see: kube-system, the release namespace, and excludeNamespaces. */}}
{{- define "patchd.excludedNamespaces" -}}
{{- uniq (concat (list "kube-system" .Release.Namespace) .Values.admission.webhook.excludeNamespaces) | toJson -}}
{{- end -}}

{{/* AppArmor through the pod annotation: asked for, or auto on clusters before 1.30 (no appArmorProfile field). */}}
{{- define "patchd.appArmorAnnotation" -}}
{{- $mode := .Values.buildkit.appArmor -}}
{{- if or (eq $mode "annotation") (and (eq $mode "auto") (semverCompare "<1.30-0" .Capabilities.KubeVersion.Version)) -}}
true
{{- end -}}
{{- end -}}

{{/* patchd.yaml: the values' config, with what the pod itself fixes. */}}
{{- define "patchd.config" -}}
{{- $config := deepCopy .Values.config.extra -}}
{{- $_ := set $config "server" (dict "host" "0.0.0.0" "port" 8080) -}}
{{- $_ := set $config "dataDir" "/var/lib/patchd" -}}
{{- $_ := set $config "worker" .Values.config.worker -}}
{{- $_ := set $config "registries" .Values.config.registries -}}
{{- if .Values.queue.redis.url -}}
{{- $_ := set $config "queue" (dict "redis" (dict "url" .Values.queue.redis.url)) -}}
{{- end -}}
{{- if .Values.admission.enabled -}}
{{- $a := .Values.admission -}}
{{- $exempt := deepCopy $a.exempt -}}
{{- $_ := set $exempt "namespaces" (uniq (concat (list "kube-system" .Release.Namespace) (default (list) $a.exempt.namespaces))) -}}
{{- $_ := set $config "admission" (dict "host" "0.0.0.0" "port" 8443 "certFile" "/etc/patchd/tls/tls.crt" "keyFile" "/etc/patchd/tls/tls.key" "mode" $a.mode "enforce" $a.enforce "failOpen" $a.failOpen "lookupTimeoutMs" $a.lookupTimeoutMs "cacheTtlSeconds" $a.cacheTtlSeconds "exempt" $exempt) -}}
{{- end -}}
{{- if .Values.buildkit.enabled -}}
{{- $bk := dict "address" "unix:///run/buildkit/buildkitd.sock" -}}
{{- if .Values.buildkit.toolingImages -}}
{{- $_ := set $bk "toolingImages" .Values.buildkit.toolingImages -}}
{{- end -}}
{{- $_ := set $config "buildkit" $bk -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}

{{/* What both webhooks share: AdmissionReview v1, no side effects, the same rules and excluded namespaces. */}}
{{- define "patchd.webhookCommon" -}}
admissionReviewVersions: [v1]
sideEffects: None
timeoutSeconds: {{ .w.timeoutSeconds }}
matchPolicy: Equivalent
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ include "patchd.excludedNamespaces" .root }}
rules:
  - apiGroups: [""]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [pods, pods/ephemeralcontainers]
    scope: Namespaced
  - apiGroups: [apps]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [deployments, replicasets, statefulsets, daemonsets]
    scope: Namespaced
  - apiGroups: [batch]
    apiVersions: [v1]
    operations: [CREATE, UPDATE]
    resources: [jobs, cronjobs]
    scope: Namespaced
{{- end -}}
