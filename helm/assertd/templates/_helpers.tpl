{{- define "assertd.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "assertd.fullname" -}}
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

{{/*
The full name with a suffix, the name shortened so that the whole stays
within 63 characters (a Service's DNS label, a Job's job-name label):
include "assertd.suffixed" (list . "headless").
*/}}
{{- define "assertd.suffixed" -}}
{{- $suffix := index . 1 -}}
{{- printf "%s-%s" (include "assertd.fullname" (index . 0) | trunc (int (sub 62 (len $suffix))) | trimSuffix "-") $suffix -}}
{{- end -}}

{{- define "assertd.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "assertd.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- /* The ServiceAccount of the pre-install/pre-upgrade hook Jobs. A
ServiceAccount the chart creates is one of the release's objects, which Helm
creates only after those hooks: the hooks get their own, created first as a
hook (templates/serviceaccount.yaml). Without serviceAccount.create they run
as the pods do (a ServiceAccount that exists before the release). */ -}}
{{- /* "true" when the migration Job runs as a pre-install/pre-upgrade hook. */ -}}
{{- define "assertd.migrateHook" -}}
{{- if and (eq .Values.store.backend "postgres") (eq .Values.store.postgres.migrations "hook") }}true{{ end -}}
{{- end -}}

{{- define "assertd.hookServiceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- printf "%s-hooks" (include "assertd.serviceAccountName" . | trunc 57 | trimSuffix "-") -}}
{{- else -}}
{{- include "assertd.serviceAccountName" . -}}
{{- end -}}
{{- end -}}

{{- define "assertd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "assertd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- /* Labels of the pods that are not the server (hook Jobs, the test pod):
no app.kubernetes.io/name, so no selector of the server's (Deployment,
Services, PodDisruptionBudget, NetworkPolicy, topology spread) picks them.
Call with (list . "component"). */ -}}
{{- define "assertd.componentLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/part-of: {{ include "assertd.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
app.kubernetes.io/managed-by: {{ $.Release.Service }}
{{- end -}}

{{- /* imagePullSecrets: the chart's and global.imagePullSecrets (names, or
{name: ...} objects as other charts spell them). */ -}}
{{- define "assertd.imagePullSecrets" -}}
{{- $names := list -}}
{{- range (concat (.Values.global.imagePullSecrets | default list) .Values.imagePullSecrets) -}}
{{- if kindIs "map" . -}}
{{- $names = append $names .name -}}
{{- else -}}
{{- $names = append $names . -}}
{{- end -}}
{{- end -}}
{{- with ($names | uniq) }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end -}}
{{- end -}}

{{- /* The pods' security context: non-root, RuntimeDefault seccomp, the
fixed IDs unless podSecurityContext.fixedIds is off, then
podSecurityContext.extra over it. */ -}}
{{- define "assertd.podSecurityContext" -}}
{{- $pod := dict "runAsNonRoot" true "seccompProfile" (dict "type" "RuntimeDefault") -}}
{{- if .Values.podSecurityContext.fixedIds -}}
{{- $pod = merge $pod (dict "runAsUser" 65532 "runAsGroup" 65532 "fsGroup" 65532) -}}
{{- end -}}
{{- toYaml (mergeOverwrite $pod (deepCopy .Values.podSecurityContext.extra)) -}}
{{- end -}}

{{- /* The containers' security context: no privilege, read-only root, no
capabilities; containerSecurityContext over it. */ -}}
{{- define "assertd.containerSecurityContext" -}}
{{- $c := dict "allowPrivilegeEscalation" false "readOnlyRootFilesystem" true "privileged" false "capabilities" (dict "drop" (list "ALL")) -}}
{{- toYaml (mergeOverwrite $c (deepCopy .Values.containerSecurityContext)) -}}
{{- end -}}

{{- define "assertd.labels" -}}
{{ include "assertd.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- /* The image; global.imageRegistry (a mirror) replaces the registry of
image.repository (its first part when that names a host: has a dot or a
port, or is localhost), or goes before a repository that names none. */ -}}
{{- define "assertd.image" -}}
{{- $repo := .Values.image.repository -}}
{{- with .Values.global.imageRegistry -}}
{{- $parts := splitn "/" 2 $repo -}}
{{- $first := $parts._0 -}}
{{- if and $parts._1 (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $parts._1 -}}
{{- else -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) $repo -}}
{{- end -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The values behind settings that change only on restart (listeners,
TLS, cache, limits, pool, store, the watch interval, the auth mode,
tracing). */}}
{{- define "assertd.restartSettings" -}}
{{- toJson (dict "ports" .Values.ports "tls" .Values.tls "cache" .Values.cache "limits" .Values.limits "pool" .Values.poolThreads "store" .Values.store "watch" .Values.configWatchIntervalSeconds "authMode" .Values.auth.mode "tracing" .Values.tracing) -}}
{{- end -}}

{{/* The server configuration: chart-managed sections, then the policy. */}}
{{- define "assertd.config" -}}
listen = "0.0.0.0:{{ .Values.ports.grpc }}"
metrics_listen = "0.0.0.0:{{ .Values.ports.metrics }}"
health_listen = "0.0.0.0:{{ .Values.ports.health }}"
insecure_allow_plaintext = {{ not (include "assertd.tls" .) }}
{{- if eq .Values.auth.mode "insecure" }}
insecure_allow_unauthenticated = true
{{- end }}
data_dir = "/var/lib/assertd"
shutdown_grace_seconds = {{ .Values.shutdown.drainSeconds }}
config_watch_interval_seconds = {{ .Values.configWatchIntervalSeconds }}

[cache]
max_entries = {{ .Values.cache.maxEntries | int64 }}
ttl_seconds = {{ .Values.cache.ttlSeconds | int64 }}
negative_ttl_seconds = {{ .Values.cache.negativeTtlSeconds | int64 }}

[limits]
max_batch_size = {{ .Values.limits.maxBatchSize | int64 }}
max_message_bytes = {{ .Values.limits.maxMessageBytes | int64 }}
max_concurrent_rpcs = {{ .Values.limits.maxConcurrentRpcs | int64 }}
max_request_bytes_in_flight = {{ .Values.limits.maxRequestBytesInFlight | int64 }}
max_queue_wait_ms = {{ .Values.limits.maxQueueWaitMs | int64 }}
max_queued_assertions = {{ .Values.limits.maxQueuedAssertions | int64 }}
max_connection_age_seconds = {{ .Values.limits.maxConnectionAgeSeconds | int64 }}
max_probe_connections = {{ .Values.limits.maxProbeConnections | int64 }}
probe_connection_seconds = {{ .Values.limits.probeConnectionSeconds | int64 }}

{{- if include "assertd.tls" . }}
[tls]
cert_file = "/etc/assertd/tls/tls.crt"
key_file = "/etc/assertd/tls/tls.key"
{{- if .Values.tls.clientAuth }}
client_ca_file = "/etc/assertd/client-ca/{{ .Values.tls.clientCaKey }}"
{{- end }}
reload_interval_seconds = {{ .Values.tls.reloadIntervalSeconds | int64 }}
{{- end }}

[pool]
threads = {{ .Values.poolThreads | int64 }}
{{- with .Values.challenges }}
{{- if .secret }}
{{- if not .keyIds }}
{{- fail "challenges.secret is set: list its key ids in challenges.keyIds (the signing key first)" }}
{{- end }}

[challenges]
keys = [{{ range $i, $id := .keyIds }}{{ if $i }}, {{ end }}{ id = {{ $id | quote }}, secret_file = "/etc/assertd/challenges/{{ $id }}" }{{ end }}]
ttl_seconds = {{ .ttlSeconds | int64 }}
max_ttl_seconds = {{ .maxTtlSeconds | int64 }}
clock_skew_seconds = {{ .clockSkewSeconds | int64 }}
{{- else if .keyIds }}
{{- fail "challenges.keyIds needs challenges.secret (the Secret holding the keys)" }}
{{- end }}
{{- end }}


[events]
retention_days = {{ .Values.events.retentionDays | int64 }}

[adoption]
gauges_interval_seconds = {{ .Values.adoption.gaugesIntervalSeconds | int64 }}
report_only_log_per_second = {{ .Values.adoption.reportOnlyLogPerSecond | int64 }}
{{- with .Values.temporaryAccessPass }}
{{- if .secret }}
{{- if not .keyIds }}
{{- fail "temporaryAccessPass.secret is set: list its key ids in temporaryAccessPass.keyIds (the hashing key first)" }}
{{- end }}

[temporary_access_pass]
keys = [{{ range $i, $id := .keyIds }}{{ if $i }}, {{ end }}{ id = {{ $id | quote }}, secret_file = "/etc/assertd/temporary-access-pass/{{ $id }}" }{{ end }}]
default_lifetime_seconds = {{ .defaultLifetimeSeconds | int64 }}
min_lifetime_seconds = {{ .minLifetimeSeconds | int64 }}
max_lifetime_seconds = {{ .maxLifetimeSeconds | int64 }}
require_one_time = {{ .requireOneTime }}
retention_days = {{ .retentionDays | int64 }}
{{- else if .keyIds }}
{{- fail "temporaryAccessPass.keyIds needs temporaryAccessPass.secret (the Secret holding the keys)" }}
{{- end }}
{{- end }}

{{- with .Values.sharedSignals }}
{{- if .receivers }}
{{- if not (and .issuer .keySecret .keyId) }}
{{- fail "sharedSignals.receivers needs sharedSignals.issuer, sharedSignals.keySecret and sharedSignals.keyId" }}
{{- end }}

[shared_signals]
issuer = {{ .issuer | quote }}
signing_key_file = "/etc/assertd/shared-signals/key/key.pem"
key_id = {{ .keyId | quote }}
{{- range .receivers }}

[[shared_signals.receivers]]
name = {{ .name | quote }}
endpoint_url = {{ .endpointUrl | quote }}
audience = {{ .audience | quote }}
{{- if .authorizationSecret }}
authorization_header_file = "/etc/assertd/shared-signals/{{ .name }}/authorization"
{{- end }}
{{- if .rpIds }}
rp_ids = [{{ range $i, $rp := .rpIds }}{{ if $i }}, {{ end }}{{ $rp | quote }}{{ end }}]
{{- end }}
{{- if .events }}
events = [{{ range $i, $e := .events }}{{ if $i }}, {{ end }}{{ $e | quote }}{{ end }}]
{{- end }}
timeout_seconds = {{ .timeoutSeconds | default 10 | int64 }}
give_up_after_seconds = {{ .giveUpAfterSeconds | default 86400 | int64 }}
{{- end }}
{{- end }}
{{- end }}

{{- with .Values.registration }}
{{- if and .attestationRoots (not .attestationRootsConfigMap) }}
{{- fail "registration.attestationRoots needs registration.attestationRootsConfigMap (the ConfigMap holding the PEM files)" }}
{{- end }}
{{- if and .attestationRootsConfigMap (not .attestationRoots) }}
{{- fail "registration.attestationRootsConfigMap is set: list which key anchors which format in registration.attestationRoots" }}
{{- end }}

[registration]
certificate_skew_seconds = {{ .certificateSkewSeconds | int64 }}
insecure_allow_sha1_attestation = {{ .insecureAllowSha1Attestation }}
{{- range .attestationRoots }}

[[attestation_roots]]
format = {{ .format | quote }}
file = "/etc/assertd/attestation-roots/{{ .key }}"
{{- end }}
{{- end }}

{{- with .Values.metadata }}
{{- if or .volume .aaguidNamesConfigMap }}
{{- if and .volume (eq .format "blob") (not .rootConfigMap) }}
{{- fail "metadata.format \"blob\" needs metadata.rootConfigMap (the FIDO root its signature chains to)" }}
{{- end }}

[metadata]
{{- if .volume }}
path = "/var/lib/assertd-metadata/{{ .file }}"
format = {{ .format | quote }}
when_stale = {{ .whenStale | quote }}
{{- if eq .format "blob" }}
root_file = "/etc/assertd/metadata-root/{{ .rootKey }}"
{{- end }}
{{- end }}
{{- if .aaguidNamesConfigMap }}
aaguid_names_file = "/etc/assertd/aaguid-names/{{ .aaguidNamesKey }}"
{{- end }}
{{- end }}
{{- end }}

{{- with .Values.tracing }}
{{- if .otlpEndpoint }}

[tracing]
otlp_endpoint = {{ .otlpEndpoint | quote }}
sample_ratio = {{ .sampleRatio | float64 }}
service_name = {{ .serviceName | quote }}
{{- end }}
{{- end }}

[store]
backend = {{ .Values.store.backend | quote }}
pool_size = {{ .Values.store.postgres.poolSize | int64 }}
timeout_ms = {{ .Values.store.timeoutMs | int64 }}
readiness_grace_seconds = {{ .Values.store.readinessGraceSeconds | int64 }}
readiness_follows_store = {{ .Values.store.readinessFollowsStore }}
counter_outage = {{ .Values.store.counterOutage | quote }}
{{- if eq .Values.store.backend "postgres" }}
{{- with .Values.store.postgres.tls }}
{{- if .mode }}
sslmode = {{ .mode | quote }}
{{- end }}
{{- if .caSecret }}
ssl_root_cert = "/etc/assertd/postgres-ca/{{ .caKey }}"
{{- end }}
{{- if .clientCertSecret }}
ssl_cert = "/etc/assertd/postgres-client/tls.crt"
ssl_key = "/etc/assertd/postgres-client/tls.key"
{{- end }}
{{- if .insecureAllowUnverified }}
insecure_allow_unverified_postgres = true
{{- end }}
{{- end }}
{{- if eq .Values.store.postgres.migrations "hook" }}
# Schema migrations run in the pre-install/pre-upgrade hook Job.
migrate = false
{{- end }}
{{- end }}

{{- if ne .Values.auth.mode "insecure" }}
{{- range .Values.auth.clients }}

[[clients]]
name = {{ .name | quote }}
relying_parties = {{ toJson .relyingParties }}
rpcs = {{ toJson .rpcs }}
{{- if eq $.Values.auth.mode "token" }}
token_sha256_env = [{{ include "assertd.tokenEnv" .name | quote }}]
{{- else }}
certificate_names = {{ toJson (default list .certificateNames) }}
{{- end }}
{{- end }}
{{- end }}

{{ .Values.policy }}
{{- end -}}

{{/* The environment variable holding a client's token hash. */}}
{{- define "assertd.tokenEnv" -}}
{{- printf "ASSERTD_TOKEN_SHA256_%s" (. | upper | replace "-" "_") -}}
{{- end -}}

{{/* The Secret with the clients' token hashes. */}}
{{- define "assertd.tokenSecret" -}}
{{- default (printf "%s-tokens" (include "assertd.fullname" .)) .Values.auth.tokenSecret -}}
{{- end -}}

{{/* "true" when gRPC is served over TLS: tls.enabled, or a serving
certificate named (tls.existingSecret, or tls.certManager.enabled): TLS is one
value away. "" otherwise. */}}
{{- define "assertd.tls" -}}
{{- if or .Values.tls.enabled .Values.tls.existingSecret .Values.tls.certManager.enabled -}}true{{- end -}}
{{- end }}

{{/* The Secret holding the serving certificate: tls.existingSecret, or the
one the cert-manager Certificate writes. */}}
{{- define "assertd.tlsSecret" -}}
{{- if .Values.tls.existingSecret -}}
{{ .Values.tls.existingSecret }}
{{- else if .Values.tls.certManager.enabled -}}
{{ include "assertd.fullname" . }}-tls
{{- end -}}
{{- end }}

{{/* The container's environment: log settings, token hashes, extraEnv, the
database URL. Shared by the pods and the config-check hook. */}}
{{- define "assertd.env" -}}
- name: ASSERTD_LOG
  value: {{ .Values.log.level | quote }}
- name: ASSERTD_LOG_FORMAT
  value: {{ .Values.log.format | quote }}
{{- if eq .Values.auth.mode "token" }}
{{- range .Values.auth.clients }}
- name: {{ include "assertd.tokenEnv" .name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "assertd.tokenSecret" $ }}
      key: {{ .name }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{- toYaml . | nindent 0 }}
{{- end }}
{{- if eq .Values.store.backend "postgres" }}
- name: ASSERTD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.store.postgres.existingSecret }}
      key: {{ .Values.store.postgres.secretKey }}
{{- end }}
{{- end -}}

{{/* PostgreSQL TLS material: mounts, then volumes (pods and the migration Job). */}}
{{- define "assertd.postgresTlsMounts" -}}
{{- if eq .Values.store.backend "postgres" }}
{{- if .Values.store.postgres.tls.caSecret }}
- name: postgres-ca
  mountPath: /etc/assertd/postgres-ca
  readOnly: true
{{- end }}
{{- if .Values.store.postgres.tls.clientCertSecret }}
- name: postgres-client
  mountPath: /etc/assertd/postgres-client
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "assertd.postgresTlsVolumes" -}}
{{- if eq .Values.store.backend "postgres" }}
{{- with .Values.store.postgres.tls }}
{{- if .caSecret }}
- name: postgres-ca
  secret:
    secretName: {{ .caSecret }}
    items:
      - key: {{ .caKey }}
        path: {{ .caKey }}
{{- end }}
{{- if .clientCertSecret }}
- name: postgres-client
  secret:
    secretName: {{ .clientCertSecret }}
    items:
      - key: tls.crt
        path: tls.crt
      - key: tls.key
        path: tls.key
{{- end }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The Shared Signals signing key and receivers' authorization headers: the
mounts (pods and the config-check Job) and their volumes.
*/}}
{{- define "assertd.sharedSignalsMounts" -}}
{{- if .Values.sharedSignals.receivers }}
- name: shared-signals-key
  mountPath: /etc/assertd/shared-signals/key
  readOnly: true
{{- range .Values.sharedSignals.receivers }}
{{- if .authorizationSecret }}
- name: ssf-auth-{{ .name }}
  mountPath: /etc/assertd/shared-signals/{{ .name }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{- define "assertd.sharedSignalsVolumes" -}}
{{- if .Values.sharedSignals.receivers }}
- name: shared-signals-key
  secret:
    secretName: {{ .Values.sharedSignals.keySecret }}
    defaultMode: 0400
    items:
      - key: key.pem
        path: key.pem
{{- range .Values.sharedSignals.receivers }}
{{- if .authorizationSecret }}
- name: ssf-auth-{{ .name }}
  secret:
    secretName: {{ .authorizationSecret }}
    defaultMode: 0400
    items:
      - key: authorization
        path: authorization
{{- end }}
{{- end }}
{{- end }}
{{- end }}
