#!/usr/bin/env bash
# The deploy_coder tests are pytest files that run ansible-playbook against the test bed; the
# entry point is scripts/test-deploy.sh in the repository. This runs them when the collection
# tree at hand has the roles and playbooks they deploy.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../../.." && pwd)"
if [ ! -d "$root/roles" ] || [ ! -d "$root/playbooks" ]; then
    echo "deploy_coder: $root has no roles/ or playbooks/; run scripts/test-deploy.sh in the repository" >&2
    exit 1
fi
exec env CODER_IT_REPO="$root" python -m pytest -p no:cacheprovider -v "$here/tests" "$@"
