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
The coder Deployment's selector.
*/}}
{{- define "coder.selector" -}}
app.kubernetes.io/name: coder
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "coder.image" -}}
{{- printf "%s:%s" .Values.coder.image.repo (.Values.coder.image.tag | default (printf "v%s" .Chart.AppVersion)) -}}
{{- end }}

{{/*
Volume mounts of the coder container: the CA bundles of coder.certs.secrets at
/etc/ssl/certs/<name>.crt, then coder.volumeMounts.
*/}}
{{- define "coder.volumeMounts" -}}
{{- range .Values.coder.certs.secrets }}
- name: {{ printf "ca-cert-%s" .name | quote }}
  mountPath: {{ printf "/etc/ssl/certs/%s.crt" .name | quote }}
  subPath: {{ .key | quote }}
  readOnly: true
{{- end }}
{{- with .Values.coder.volumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Volumes of the pod: one per coder.certs.secrets entry, then coder.volumes.
*/}}
{{- define "coder.volumes" -}}
{{- range .Values.coder.certs.secrets }}
- name: {{ printf "ca-cert-%s" .name | quote }}
  secret:
    secretName: {{ .name | quote }}
{{- end }}
{{- with .Values.coder.volumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
