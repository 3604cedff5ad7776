{{/*
Labels of every object of the release.
*/}}
{{- define "coder.labels" -}}
app.kubernetes.io/name: coder
app.kubernetes.io/part-of: coder
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end }}

{{/*
The coderd Deployment's selector. Chart 1.45.0 and later also select on the release name: an
immutable field, so an upgrade from 1.44.x cannot apply (the "immutable selector" fault).
*/}}
{{- define "coder.selector" -}}
coder.deployment: coderd
{{- if semverCompare ">=1.45.0-0" .Chart.Version }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}
{{- end }}

{{/*
The database env of both the migrations init container and the coderd container. While
postgres.default.enable is true, the built-in database is used and every other postgres.* key is
ignored.
*/}}
{{- define "coder.dbEnv" -}}
{{- $pg := .Values.postgres -}}
{{- if $pg.default.enable }}
- name: DB_HOST
  value: {{ printf "timescale.%s.svc.cluster.local" .Release.Namespace | quote }}
- name: DB_PORT
  value: "5432"
- name: DB_USER
  value: "coder"
- name: DB_NAME
  value: "coder"
- name: DB_CONNECTOR
  value: "postgres"
- name: DB_SSL_MODE
  value: "disable"
{{- else }}
- name: DB_HOST
  value: {{ $pg.host | quote }}
- name: DB_PORT
  value: {{ $pg.port | quote }}
- name: DB_USER
  value: {{ $pg.user | quote }}
- name: DB_NAME
  value: {{ $pg.database | quote }}
- name: DB_CONNECTOR
  value: {{ $pg.connector | quote }}
- name: DB_SSL_MODE
  value: {{ $pg.sslMode | quote }}
{{- if $pg.searchPath }}
- name: DB_SEARCH_PATH
  value: {{ $pg.searchPath | quote }}
{{- end }}
{{- if and $pg.passwordSecret (not $pg.noPasswordEnv) }}
- name: DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $pg.passwordSecret | quote }}
      key: password
{{- end }}
{{- if and $pg.passwordSecret $pg.noPasswordEnv }}
- name: DB_PASSWORD_PATH
  value: {{ printf "/run/secrets/%s/password" $pg.passwordSecret | quote }}
{{- end }}
{{- if $pg.ssl.certSecret.name }}
- name: DB_CERT
  value: {{ printf "/etc/ssl/certs/pg/cert/%s" $pg.ssl.certSecret.key | quote }}
{{- end }}
{{- if $pg.ssl.keySecret.name }}
- name: DB_KEY
  value: {{ printf "/etc/ssl/certs/pg/key/%s" $pg.ssl.keySecret.key | quote }}
{{- end }}
{{- if $pg.ssl.rootCertSecret.name }}
- name: DB_ROOT_CERT
  value: {{ printf "/etc/ssl/certs/pg/rootcert/%s" $pg.ssl.rootCertSecret.key | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Volume mounts of both containers: always tmp-pgcerts (coderd copies the certificates there), then
the database's.
*/}}
{{- define "coder.dbVolumeMounts" -}}
{{- $pg := .Values.postgres -}}
- name: tmp-pgcerts
  mountPath: /tmp/pgcerts
{{- if not $pg.default.enable }}
{{- if $pg.ssl.certSecret.name }}
- name: pgcert
  mountPath: /etc/ssl/certs/pg/cert
  readOnly: true
{{- end }}
{{- if $pg.ssl.keySecret.name }}
- name: pgkey
  mountPath: /etc/ssl/certs/pg/key
  readOnly: true
{{- end }}
{{- if $pg.ssl.rootCertSecret.name }}
- name: pgrootcert
  mountPath: /etc/ssl/certs/pg/rootcert
  readOnly: true
{{- end }}
{{- if $pg.noPasswordEnv }}
- name: {{ $pg.passwordSecret | quote }}
  mountPath: {{ printf "/run/secrets/%s" $pg.passwordSecret | quote }}
  readOnly: true
{{- end }}
{{- end }}
{{- end }}

{{/*
Volumes of the pod: always the emptyDir tmp-pgcerts, then secret volumes (no defaultMode). With
noPasswordEnv, the password volume is named after the Secret itself; like the real chart, nothing
checks that the name is set, nor that it differs from the chart's own volume names.
*/}}
{{- define "coder.dbVolumes" -}}
{{- $pg := .Values.postgres -}}
- name: tmp-pgcerts
  emptyDir: {}
{{- if not $pg.default.enable }}
{{- if $pg.ssl.certSecret.name }}
- name: pgcert
  secret:
    secretName: {{ $pg.ssl.certSecret.name | quote }}
{{- end }}
{{- if $pg.ssl.keySecret.name }}
- name: pgkey
  secret:
    secretName: {{ $pg.ssl.keySecret.name | quote }}
{{- end }}
{{- if $pg.ssl.rootCertSecret.name }}
- name: pgrootcert
  secret:
    secretName: {{ $pg.ssl.rootCertSecret.name | quote }}
{{- end }}
{{- if $pg.noPasswordEnv }}
- name: {{ $pg.passwordSecret | quote }}
  secret:
    secretName: {{ $pg.passwordSecret | quote }}
{{- end }}
{{- end }}
{{- end }}

{{- define "coder.image" -}}
{{- .Values.coderd.image | default (printf "docker.io/coderenvs/coder-service:%s" .Chart.AppVersion) -}}
{{- end }}
