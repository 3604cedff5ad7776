#!/usr/bin/env bash
# After `make demo`: the release, its revision and the access URL, read back from the cluster.
set -euo pipefail
ns=${CODER_NAMESPACE:-coder}
release=coder
listing=$(helm list -n "$ns" --filter "^${release}\$" -o json)
read -r revision state chart < <(python3 -c '
import json, sys
r = json.load(sys.stdin)[0]
print(r["revision"], r["status"], r["chart"])
' <<<"$listing")
ip=$(kubectl get service coderd -n "$ns" -o jsonpath='{.status.loadBalancer.ingress[0].ip}' 2>/dev/null || true)
echo
echo "Coder release: $release in namespace $ns, revision $revision ($state), chart $chart"
if [ -n "$ip" ]; then
  echo "Access URL:    http://$ip"
else
  echo "Access URL:    (the Service has no external address yet)"
fi
