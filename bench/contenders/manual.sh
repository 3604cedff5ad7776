#!/usr/bin/env bash
# Contender "shell script" of make bench: what the Coder deployment guide says to do by hand,
# made repeatable (every step is create-or-update, so a second run changes nothing but helm's
# revision counter).
#
#   bench/contenders/manual.sh NAMESPACE CHART VALUES_FILE [extra helm args ...]
#
# Environment: CODER_TEST_PG_PASSWORD_FILE (the password, read on stdin: never in argv),
# CODER_TEST_PG_MAIN_SSLROOTCERT (CA bundle), HELM (helm binary, default helm), KUBECONFIG.
# The guide's `--from-literal=password=...` would put the password into the process list; the
# file is given on stdin instead, so that this contender keeps the same rule as the collection.
set -euo pipefail
ns=$1 chart=$2 values=$3
shift 3
helm=${HELM:-helm}

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl create secret generic coder-db-password --namespace "$ns" \
  --from-file=password=/dev/stdin --dry-run=client -o yaml <"$CODER_TEST_PG_PASSWORD_FILE" \
  | kubectl apply -f - >/dev/null
kubectl create secret generic coder-db-ca --namespace "$ns" \
  --from-file=ca.crt="$CODER_TEST_PG_MAIN_SSLROOTCERT" --dry-run=client -o yaml \
  | kubectl apply -f - >/dev/null
exec "$helm" upgrade --install coder "$chart" --namespace "$ns" --values "$values" \
  --wait --timeout 300s "$@"
