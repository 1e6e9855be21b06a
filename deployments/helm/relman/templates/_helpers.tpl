{{/* Names. */}}
{{- define "relman.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "relman.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "relman.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels; call with (list $ "component"). */}}
{{- define "relman.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ $.Chart.Name }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "relman.labels" -}}
{{- $ := index . 0 -}}
{{ include "relman.selectorLabels" . }}
app.kubernetes.io/version: {{ $.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" $.Chart.Name $.Chart.Version }}
{{- end -}}

{{- define "relman.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "relman.builderImage" -}}
{{- printf "%s:%s" .Values.builderImage.repository (default .Chart.AppVersion .Values.builderImage.tag) -}}
{{- end -}}

{{/* The store URL builders and installers use. */}}
{{- define "relman.artifactsURL" -}}
{{- if .Values.artifacts.url -}}
{{- .Values.artifacts.url -}}
{{- else if .Values.artifacts.hostPath -}}
file:///var/lib/relman/artifacts
{{- else -}}
{{- fail "set artifacts.url (s3://...) or artifacts.hostPath (a file:// store on a single-node cluster): builders and installers need a store they share" -}}
{{- end -}}
{{- end -}}

{{/*
The Temporal connection, as environment variables (config/temporal.go):
flags > environment > file, so the config files leave it out.
*/}}
{{- define "relman.temporalEnv" -}}
- name: TEMPORAL_ADDRESS
  value: {{ .Values.temporal.address | quote }}
- name: TEMPORAL_NAMESPACE
  value: {{ .Values.temporal.namespace | quote }}
{{- if .Values.temporal.tls }}
- name: TEMPORAL_TLS
  value: "true"
{{- end }}
{{- with .Values.temporal.serverName }}
- name: TEMPORAL_TLS_SERVER_NAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.temporal.clientCertSecret }}
- name: TEMPORAL_TLS_CERT
  value: /etc/relman/temporal-tls/tls.crt
- name: TEMPORAL_TLS_KEY
  value: /etc/relman/temporal-tls/tls.key
{{- end }}
{{- if .Values.temporal.caSecret }}
- name: TEMPORAL_TLS_CA
  value: /etc/relman/temporal-ca/ca.crt
{{- end }}
{{- if .Values.temporal.apiKeySecret.name }}
- name: TEMPORAL_API_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.temporal.apiKeySecret.name }}
      key: {{ .Values.temporal.apiKeySecret.key }}
{{- end }}
{{- if .Values.encryption.keysSecret }}
- name: RELMAN_ENCRYPTION_KEY_FILE
  value: /etc/relman/encryption/payload.keys
{{- end }}
{{- with .Values.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "relman.temporalVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.temporal.clientCertSecret }}
- name: temporal-tls
  mountPath: /etc/relman/temporal-tls
  readOnly: true
{{- end }}
{{- if .Values.temporal.caSecret }}
- name: temporal-ca
  mountPath: /etc/relman/temporal-ca
  readOnly: true
{{- end }}
{{- if .Values.encryption.keysSecret }}
- name: encryption
  mountPath: /etc/relman/encryption
  readOnly: true
{{- end }}
{{- end -}}

{{- define "relman.temporalVolumes" -}}
# The root file system is read-only; temp files go here.
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- with .Values.temporal.clientCertSecret }}
- name: temporal-tls
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- with .Values.temporal.caSecret }}
- name: temporal-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- with .Values.encryption.keysSecret }}
- name: encryption
  secret:
    secretName: {{ . }}
    defaultMode: 0440
{{- end }}
{{- end -}}

{{/* Liveness and readiness on status_address (config.Service). */}}
{{- define "relman.probes" -}}
livenessProbe:
  httpGet:
    path: /livez
    port: status
  periodSeconds: 10
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /readyz
    port: status
  periodSeconds: 5
  failureThreshold: 2
startupProbe:
  httpGet:
    path: /livez
    port: status
  periodSeconds: 2
  failureThreshold: 30
{{- end -}}

{{/*
What every role's config gets from the chart: the format version, where
probes ask, and logs on stderr (no logging.path), which is where a
container's logs belong.
*/}}
{{- define "relman.serviceConfig" -}}
{{- dict "version" 1 "status_address" (printf "0.0.0.0:%v" .Values.statusPort) "logging" (dict "level" .Values.logLevel) | toJson -}}
{{- end -}}

{{- define "relman.managerConfig" -}}
{{- $c := mustMergeOverwrite (deepCopy .Values.manager.config) (include "relman.serviceConfig" . | fromJson) -}}
{{- $g := .Values.manager.gateway -}}
{{- if $g.enabled -}}
{{- $_ := set $c "listen_address" "0.0.0.0" -}}
{{- $_ := set $c "listen_port" $g.port -}}
{{- if $g.tlsSecret -}}
{{- $_ := set $c "gateway" (dict "tls_cert_path" "/etc/relman/gateway-tls/tls.crt" "tls_key_path" "/etc/relman/gateway-tls/tls.key") -}}
{{- else if $g.insecure -}}
{{- $_ := set $c "gateway" (dict "insecure" true) -}}
{{- else -}}
{{- fail "manager.gateway: set tlsSecret (a kubernetes.io/tls Secret), or insecure: true to serve plain HTTP, or enabled: false" -}}
{{- end -}}
{{- else -}}
{{- $_ := set $c "gateway" (dict "off" true) -}}
{{- end -}}
{{- if .Values.manager.records.keySecret -}}
{{- $_ := set $c "artifacts" (include "relman.artifactsURL" .) -}}
{{- $_ := set $c "records_key_file" "/etc/relman/records-key/records.key" -}}
{{- end -}}
{{- if not .Values.manager.orders.keySecret -}}
{{- fail "manager.orders.keySecret: set a Secret holding orders.key, the key the managers sign install orders with; deployments/README.md step 3 makes it, and relman manager-key prints its public half for installer.trust.managerKeys" -}}
{{- end -}}
{{- $_ := set $c "orders_key_file" "/var/lib/relman/orders/orders.key" -}}
{{- $a := .Values.manager.auth -}}
{{- if $a.usersSecret -}}
{{- $_ := set $c "auth" (dict "users_file" "/etc/relman/users/users.yaml" "secret_file" "/etc/relman/gateway-secret/gateway.secret" "anonymous" $a.anonymous) -}}
{{- else if $a.anonymous -}}
{{- $_ := set $c "auth" (dict "anonymous" true) -}}
{{- else -}}
{{- fail "manager.auth: set usersSecret (a Secret with users.yaml), or anonymous: true to let anyone release anything" -}}
{{- end -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "relman.builderConfig" -}}
{{- $c := mustMergeOverwrite (deepCopy .Values.builder.config) (include "relman.serviceConfig" . | fromJson) -}}
{{- $_ := set $c "work_dir" "/var/lib/relman/work" -}}
{{- $_ := set $c "signing_key_file" "/etc/relman/build-signing/build-signing.key" -}}
{{- $_ := set $c "artifacts" (include "relman.artifactsURL" .) -}}
{{- $_ := set $c "lease" .Values.builder.lease -}}
{{- toYaml $c -}}
{{- end -}}

{{- define "relman.installerConfig" -}}
{{- $c := mustMergeOverwrite (deepCopy .Values.installer.config) (include "relman.serviceConfig" . | fromJson) -}}
{{- /* A placeholder: every pod runs with --host set to its node's name. */ -}}
{{- $_ := set $c "host" "node-name" -}}
{{- $_ := set $c "work_dir" "/var/lib/relman/installer" -}}
{{- $_ := set $c "artifacts" (include "relman.artifactsURL" .) -}}
{{- $_ := set $c "lease" .Values.installer.lease -}}
{{- /* Only install orders the managers signed. */ -}}
{{- $t := default (dict) (get $c "trust") -}}
{{- with .Values.installer.trust.managerKeys -}}
{{- $_ := set $t "manager_keys" . -}}
{{- end -}}
{{- if not (or (get $t "manager_keys") (get $t "manager_key_files")) -}}
{{- fail "installer.trust.managerKeys: set the managers' public order keys, as relman manager-key --config manager.yaml prints them (deployments/README.md step 3): installers run only install orders signed with one of them" -}}
{{- end -}}
{{- $_ := set $c "trust" $t -}}
{{- toYaml $c -}}
{{- end -}}
