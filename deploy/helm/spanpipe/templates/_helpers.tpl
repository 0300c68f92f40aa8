{{- define "spanpipe.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "spanpipe.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "spanpipe.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "spanpipe.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "spanpipe.secretName" -}}
{{ .Values.secrets.existingSecret | default (printf "%s-secrets" (include "spanpipe.fullname" .)) }}
{{- end -}}

{{/* seconds parses a Go duration made of h, m and s parts ("1m30s"); fails on others. */}}
{{- define "spanpipe.seconds" -}}
{{- $d := toString . -}}
{{- if not (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $d) -}}{{ fail (printf "config.kafka.shutdown_timeout %q: use h, m and s units (e.g. 45s, 1m30s)" $d) }}{{- end -}}
{{- $h := regexFind "[0-9]+h" $d | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $d | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $d | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- end -}}

{{/* env: the secrets as SPANPIPE_* variables (optional keys: an unset one is skipped). */}}
{{- define "spanpipe.env" -}}
- name: SPANPIPE_CONFIG
  value: /etc/spanpipe/spanpipe.yaml
- name: SPANPIPE_SINK_CLICKHOUSE_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "spanpipe.secretName" . }}, key: clickhouse-password, optional: true}
- name: SPANPIPE_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ include "spanpipe.secretName" . }}, key: kafka-sasl-password, optional: true}
{{- end -}}

{{- define "spanpipe.volumeMounts" -}}
- name: config
  mountPath: /etc/spanpipe/spanpipe.yaml
  subPath: spanpipe.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if .Values.kafkaCA.secretName }}
- name: kafka-ca
  mountPath: /etc/spanpipe/kafka-ca
  readOnly: true
{{- end }}
{{- end -}}

{{- define "spanpipe.volumes" -}}
- name: config
  configMap:
    name: {{ include "spanpipe.fullname" . }}-config
- name: tmp
  emptyDir: {}
{{- if .Values.kafkaCA.secretName }}
- name: kafka-ca
  secret:
    secretName: {{ .Values.kafkaCA.secretName }}
{{- end }}
{{- end -}}
