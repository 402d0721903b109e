{{/*
Chart name, shortened to the 63 characters a label value may hold.
*/}}
{{- define "trackvia-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every resource name: the release name, followed by the chart name
unless the release name already contains it.
*/}}
{{- define "trackvia-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "trackvia-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the operator's pods; never change them after the first
release, Deployment selectors are immutable.
*/}}
{{- define "trackvia-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trackvia-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every resource of the release.
*/}}
{{- define "trackvia-operator.labels" -}}
helm.sh/chart: {{ include "trackvia-operator.chart" . }}
{{ include "trackvia-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trackvia-operator
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of the `helm test` pod: the release's, without the operator pods' selector labels.
*/}}
{{- define "trackvia-operator.testLabels" -}}
helm.sh/chart: {{ include "trackvia-operator.chart" . }}
app.kubernetes.io/name: {{ include "trackvia-operator.name" . }}-test
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: test
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Name of the ServiceAccount the operator runs as.
*/}}
{{- define "trackvia-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "trackvia-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository, then a digest if one is pinned, else the tag
(the chart's appVersion by default).
*/}}
{{- define "trackvia-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/*
"true" when more than one replica runs, which switches on leader election,
the Lease permissions and the PodDisruptionBudget.
*/}}
{{- define "trackvia-operator.leaderElection" -}}
{{- if .Values.leaderElection.enabled }}true{{ end }}
{{- end }}

{{/*
Namespace holding the leader-election Lease.
*/}}
{{- define "trackvia-operator.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{/*
Name of the leader-election Lease.
*/}}
{{- define "trackvia-operator.leaseName" -}}
{{- default (include "trackvia-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{/*
Directory the extra CA bundle is mounted at, and the file passed to the operator.
*/}}
{{- define "trackvia-operator.extraCADir" -}}
/etc/trackvia-operator/extra-ca
{{- end }}
{{- define "trackvia-operator.extraCAFile" -}}
{{ include "trackvia-operator.extraCADir" . }}/ca.pem
{{- end }}

{{/*
The permissions the operator needs wherever it watches TrackViaConnections:
in one ClusterRole, or repeated in a Role per watched namespace (scoped mode).
Secrets may be created and patched but never deleted: the operator's own
Secrets are removed by garbage collection through ownerReferences.
*/}}
{{- define "trackvia-operator.rules" -}}
- apiGroups: ["trackvia.io"]
  resources: ["trackviaconnections"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["trackvia.io"]
  resources: ["trackviaconnections/status"]
  verbs: ["patch"]
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.rolloutRestart.enabled }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets"]
  verbs: ["get", "patch"]
{{- end }}
{{- end }}

{{/*
The arguments the chart passes to `trackvia-operator run`, as a YAML list.
*/}}
{{- define "trackvia-operator.args" -}}
- run
- --metrics-addr=0.0.0.0:{{ .Values.metrics.port }}
- --log-level={{ .Values.logLevel }}
- --log-format={{ .Values.logFormat }}
- --rate-limit={{ .Values.rateLimit }}
- --concurrency={{ .Values.concurrency }}
- --source-watch-limit={{ .Values.sourceWatchLimit }}
- --source-watch-total-limit={{ .Values.sourceWatchTotalLimit }}
{{- with .Values.watchNamespaces }}
- --namespaces={{ join "," . }}
{{- end }}
{{- with .Values.allowedHosts }}
- --allowed-hosts={{ join "," . }}
{{- end }}
{{- if or .Values.extraCA.secretName .Values.extraCA.configMapName }}
- --extra-ca-file={{ include "trackvia-operator.extraCAFile" . }}
{{- end }}
{{- if include "trackvia-operator.leaderElection" . }}
- --leader-election
- --leader-election-namespace={{ include "trackvia-operator.leaseNamespace" . }}
- --leader-election-lease-name={{ include "trackvia-operator.leaseName" . }}
- --leader-election-lease-duration={{ .Values.leaderElection.leaseDuration }}
- --leader-election-renew-deadline={{ .Values.leaderElection.renewDeadline }}
- --leader-election-retry-period={{ .Values.leaderElection.retryPeriod }}
{{- end }}
{{- end }}

{{/*
Refuse extraArgs and TRACKVIA_* extraEnv entries for flags the chart passes itself: of a
repeated flag the last silently wins, and a flag silently wins over its variable.
*/}}
{{- define "trackvia-operator.validateExtras" -}}
{{- $flags := list }}
{{- range (include "trackvia-operator.args" . | fromYamlArray) }}
{{- $flags = append $flags (regexReplaceAll "=.*$" (toString .) "") }}
{{- end }}
{{- range .Values.extraArgs }}
{{- $flag := regexReplaceAll "=.*$" (toString .) "" }}
{{- if has $flag $flags }}
{{- fail (printf "extraArgs: %s is set by the chart; use the chart value for it instead (see the values table)" $flag) }}
{{- end }}
{{- end }}
{{- range .Values.extraEnv }}
{{- if hasPrefix "TRACKVIA_" .name }}
{{- $flag := printf "--%s" (trimPrefix "TRACKVIA_" .name | lower | replace "_" "-") }}
{{- if has $flag $flags }}
{{- fail (printf "extraEnv: %s would be ignored, the chart passes %s; use the chart value for it instead" .name $flag) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Refuse combinations the schema cannot express.
*/}}
{{- define "trackvia-operator.validate" -}}
{{- if and .Values.extraCA.secretName .Values.extraCA.configMapName }}
{{- fail "extraCA: set secretName or configMapName, not both" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount above 1 needs leaderElection.enabled: without it every replica would reconcile" }}
{{- end }}
{{- if and (not .Values.leaderElection.enabled) .Values.strategy (ne (.Values.strategy.type | default "") "Recreate") }}
{{- fail "strategy: without leaderElection.enabled only type Recreate is safe: a rolling update would run two reconcilers at once" }}
{{- end }}
{{- include "trackvia-operator.validateExtras" . }}
{{- if and .Values.metrics.serviceMonitor.enabled (not .Values.metrics.service.enabled) }}
{{- fail "metrics.serviceMonitor.enabled needs metrics.service.enabled" }}
{{- end }}
{{- end }}

{{/*
Removes every x-kubernetes-validations key from a parsed schema, in place; prints nothing.
*/}}
{{- define "trackvia-operator.dropValidations" -}}
{{- if kindIs "map" . }}
{{- $_ := unset . "x-kubernetes-validations" }}
{{- range $key, $child := . }}{{ include "trackvia-operator.dropValidations" $child }}{{ end }}
{{- else if kindIs "slice" . }}
{{- range . }}{{ include "trackvia-operator.dropValidations" . }}{{ end }}
{{- end }}
{{- end }}

{{/*
"true" when the ServiceMonitor / PrometheusRule is asked for and the cluster serves the
Prometheus Operator's API (`helm template` needs `--api-versions monitoring.coreos.com/v1`);
NOTES.txt says when one was asked for but left out.
*/}}
{{- define "trackvia-operator.monitoringApi" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}
{{- define "trackvia-operator.serviceMonitor" -}}
{{- if and .Values.metrics.serviceMonitor.enabled (include "trackvia-operator.monitoringApi" .) }}true{{ end }}
{{- end }}
{{- define "trackvia-operator.prometheusRule" -}}
{{- if and .Values.prometheusRule.enabled (include "trackvia-operator.monitoringApi" .) }}true{{ end }}
{{- end }}
