{{- define "clamgate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "clamgate.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "clamgate.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: pool
{{- end -}}

{{- define "clamgate.image" -}}
{{- if .Values.image.digest -}}{{ printf "%s@%s" .Values.image.repository .Values.image.digest }}{{- else -}}{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}{{- end -}}
{{- end -}}

{{/* clamd's memory, as `clamgate engine prepare` sizes MemoryMax
(internal/sigdb.SizeMemory): loaded = max(4 x database on disk, 256 MiB),
request = 1.5 x loaded, limit = 2 x loaded, each rounded up to 64 MiB. */}}
{{- define "clamgate.loadedMiB" -}}
{{- max (mul 4 (int .Values.database.sizeMiB)) 256 -}}
{{- end -}}
{{- define "clamgate.clamdRequestMiB" -}}
{{- $l := int (include "clamgate.loadedMiB" .) -}}
{{- mul (div (add (div (mul $l 3) 2) 63) 64) 64 -}}
{{- end -}}
{{- define "clamgate.clamdLimitMiB" -}}
{{- $l := int (include "clamgate.loadedMiB" .) -}}
{{- mul (div (add (mul $l 2) 63) 64) 64 -}}
{{- end -}}

{{/* The shared database volume's source. */}}
{{- define "clamgate.databaseVolume" -}}
{{- if .Values.database.volume -}}
{{ toYaml .Values.database.volume }}
{{- else -}}
persistentVolumeClaim:
  claimName: {{ include "clamgate.fullname" . }}-database
  readOnly: true
{{- end -}}
{{- end -}}

{{- define "clamgate.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
privileged: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
