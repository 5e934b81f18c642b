{{/* Name of the chart, or nameOverride. */}}
{{- define "dbmigrate-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects (63 characters at most). */}}
{{- define "dbmigrate-operator.fullname" -}}
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

{{/* Labels that select the operator pod; never change them in an upgrade. */}}
{{- define "dbmigrate-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dbmigrate-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object of the release. */}}
{{- define "dbmigrate-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dbmigrate-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: dbmigrate
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The operator's ServiceAccount name. */}}
{{- define "dbmigrate-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dbmigrate-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The operator image, also the default image of the step Jobs. */}}
{{- define "dbmigrate-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The permissions the operator needs in every namespace it serves. Each rule names the code that
needs it; docs/install.md lists them and tests/cluster/test_install_rbac.py asserts the exact list.
*/}}
{{- define "dbmigrate-operator.namespacedRules" -}}
# Watch DatabaseMigrations; Kopf merge-patches its annotations and finalizer on the resource; a
# DatabaseMigrationRollout creates one per target (and annotates them to roll back).
- apiGroups: [dbmigrate.io]
  resources: [databasemigrations]
  verbs: [get, list, watch, patch, create]
# The operator's status fields. get is needed too: the operator creates, for each migration, a
# Role granting get/patch on this subresource, and RBAC only lets it grant what it holds.
- apiGroups: [dbmigrate.io]
  resources: [databasemigrations/status]
  verbs: [get, patch]
# Owned objects carry blockOwnerDeletion; clusters enforcing OwnerReferencesPermissionEnforcement
# require update on the owner's finalizers to set it.
- apiGroups: [dbmigrate.io]
  resources: [databasemigrations/finalizers]
  verbs: [update]
# Rollbacks on demand (MigrationRollback): watched, their status written, Kopf's finalizer.
- apiGroups: [dbmigrate.io]
  resources: [migrationrollbacks]
  verbs: [get, list, watch, create, patch]
- apiGroups: [dbmigrate.io]
  resources: [migrationrollbacks/status]
  verbs: [get, patch]
- apiGroups: [dbmigrate.io]
  resources: [migrationrollbacks/finalizers]
  verbs: [update]
# DatabaseMigrationRollouts: watched, their status written, owners of their DatabaseMigrations.
- apiGroups: [dbmigrate.io]
  resources: [databasemigrationrollouts]
  verbs: [get, list, watch, patch]
- apiGroups: [dbmigrate.io]
  resources: [databasemigrationrollouts/status]
  verbs: [get, patch]
- apiGroups: [dbmigrate.io]
  resources: [databasemigrationrollouts/finalizers]
  verbs: [update]
# The step Jobs: created with deterministic names, listed by label, watched for completion,
# deleted when superseded.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, delete]
# spec.source.configMap must exist; spec.source.inline becomes a ConfigMap the operator owns, and
# so does the spec a run started with (<name>-run-spec).
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch]
# Which keys the database Secret holds (never its values); the URL of a spec.notifications
# target, read from its Secret when a notification is sent (never logged or stored); list: a
# rollout's target Secrets by label selector (metadata only: names and labels).
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list]
# The step pods' ServiceAccount, and the Role + RoleBinding letting it patch this one status.
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create]
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create, patch]
# Emergency rollback: record replicas, scale the listed workloads to zero and back.
- apiGroups: [apps]
  resources: [deployments/scale, statefulsets/scale]
  verbs: [get, patch]
# ... and wait until their pods are gone before the rollback starts; a failed step Job's pod
# says why it failed (its termination message).
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# spec.backup.pvcName must exist before a Job mounts it.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
# Events on every transition (and Kopf's own warnings).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end }}
