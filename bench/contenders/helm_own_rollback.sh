#!/usr/bin/env bash
# Contender "helm's own rollback" of make bench B4: an upgrade that helm itself rolls back when
# it fails, the way an operator without this collection would run it: helm 3 `--atomic`,
# helm 4 `--rollback-on-failure` (both wait for the release until the timeout).
#
#   bench/contenders/helm_own_rollback.sh NAMESPACE CHART VALUES_FILE TIMEOUT_S [helm args ...]
#
# Environment: HELM (helm3 or helm4), KUBECONFIG.
set -euo pipefail
ns=$1 chart=$2 values=$3 timeout=$4
shift 4
helm=${HELM:-helm}
case "$("$helm" version --short)" in
  v3.*) flag=--atomic ;;
  *) flag=--rollback-on-failure ;;
esac
exec "$helm" upgrade coder "$chart" --namespace "$ns" --values "$values" "$flag" \
  --timeout "${timeout}s" "$@"
