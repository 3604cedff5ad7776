#!/usr/bin/python
# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: coder_helm_release
short_description: Install or upgrade a Helm release with fail-fast watching and rollback to the last good revision
version_added: 0.1.0
description:
  - Installs, upgrades, rolls back or uninstalls one Helm release, with helm 3 or helm 4, the way
    the Coder deployment needs it. Written because M(kubernetes.core.helm) falls short here (see
    the notes).
  - With O(state=present), makes no new revision when the chart version and the values are those of
    the deployed revision. Otherwise runs C(helm install) or C(helm upgrade) with C(--wait) and
    O(timeout) (never C(--atomic)) and, while helm waits, watches the pods of the new template -
    it prints their progress at least every O(progress_interval) seconds and, when a pod stays in
    CrashLoopBackOff, ImagePullBackOff, ErrImagePull, Failed and the like for O(fail_fast_grace)
    seconds, stops helm at once instead of sitting out the timeout.
  - On failure it rolls back to the last good revision of C(helm history -o json) (never blindly
    "previous") - the newest C(deployed) one, else the newest C(superseded) one, skipping revisions
    whose description says they failed (a failed rollback relabels the failed revision it started
    from C(superseded)) - or uninstalls a failed first install
    (unless O(keep_failed_install)), and fails with one summary - helm's error, the pods that were
    not ready and why, recent Events, and the revision it rolled back to, or both errors when
    the rollback failed too.
  - Holds a Lease (C(<name>-coderops-lock)) in the namespace while it changes the release. A
    second run reports that another operation is in progress and changes nothing. A release stuck
    in C(pending-install), C(pending-upgrade) or C(pending-rollback) without a live Lease (a helm
    process was killed) is reported with guidance, or recovered with O(recover_pending).
  - Leftover failed hook Jobs of failed revisions are deleted before the next install or upgrade,
    so that they do not make its hooks fail.
  - When cancelled (SIGTERM, as AWX does, or the controller process killed), it stops helm and
    puts the release back on the last good revision before it exits.
  - When the API server goes away while helm runs (restarted, upgraded, the network to it down),
    it keeps watching helm. If the operation fails, it waits for the API server to answer again
    (the rest of O(timeout), at least 120 and at most 600 seconds), rolls back as above and says
    how long the server was away. If the server does not come back in time, it fails with reason
    V(api_unreachable), the state the release is probably left in and the exact
    C(playbooks/rollback_coder.yml) command. The Lease is deleted with retries while the server
    does not answer.
  - Values are passed to helm in a private file (mode C(0600)) that is removed afterwards. They
    should only name Secrets; Helm keeps every revision's values in its release Secret.
author:
  - coderops maintainers (@coderops)
extends_documentation_fragment:
  - coderops.deploy._helm
  - coderops.deploy._k8s_auth
  - coderops.deploy._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports the operation that would run and changes nothing (no Lease is taken either).
  diff_mode:
    support: full
    details:
      - Shows the chart and the values of the deployed revision and the wanted ones.
  idempotent:
    support: full
    details:
      - No new revision when the chart version and values are unchanged.
      - O(state=rolled_back) without O(revision) changes nothing while the newest revision is deployed.
options:
  state:
    description:
      - V(present) installs or upgrades; V(absent) uninstalls; V(rolled_back) rolls back to
        O(revision), or, without it, to the last good revision when the newest is not deployed.
    type: str
    default: present
    choices: [present, absent, rolled_back]
  chart_ref:
    description:
      - The chart, as helm takes it - a local chart directory or archive, C(repo/chart) of a
        repository added with C(helm repo add), C(chart) with O(chart_repo_url), or an C(oci://) reference.
      - Required with O(state=present).
    type: str
  chart_repo_url:
    description:
      - URL of the chart repository (C(helm --repo)); O(chart_ref) is then the chart's name
        (a C(repo/) prefix is fine and ignored by helm's C(--repo)).
    type: str
  chart_version:
    description:
      - Chart version (C(helm --version)); the newest when not set. Checked to exist before anything
        changes. For a local chart, it must be the version in its C(Chart.yaml).
    type: str
  values:
    description:
      - The Helm values (for example RV(coderops.deploy.coder_values#module:values)). Exactly these are used
        (C(--reset-values)).
    type: dict
    default: {}
  revision:
    description:
      - With O(state=rolled_back), the revision to roll back to; it must be C(deployed) or C(superseded).
    type: int
  timeout:
    description:
      - Seconds helm waits for the install or upgrade (C(--timeout)), 10 to 86400.
    type: int
    default: 300
  rollback_timeout:
    description:
      - Seconds helm waits for a rollback or an uninstall after a failure, 10 to 86400.
    type: int
    default: 300
  wait_strategy:
    description:
      - Helm 4 only - the C(--wait) strategy, V(watcher) (kstatus) or V(legacy) (helm 3's checks).
        Helm 3 always waits its own way.
    type: str
    default: watcher
    choices: [watcher, legacy]
  fail_fast:
    description:
      - Stop waiting as soon as a new pod is stuck in a state that waiting does not heal.
    type: bool
    default: true
  fail_fast_grace:
    description:
      - Seconds a new pod may stay in CrashLoopBackOff, ImagePullBackOff, Failed ... before the
        run fails fast, 0 to 3600.
    type: int
    default: 20
  progress_interval:
    description:
      - Seconds between two progress lines while helm waits, 1 to 30.
    type: int
    default: 15
  recover_pending:
    description:
      - Recover a release stuck in C(pending-*) (and not held by a live run) - roll it back to the
        last good revision, or uninstall it when it has none - then carry on.
      - When V(false), such a release fails the run with guidance and nothing is changed.
    type: bool
    default: false
  keep_failed_install:
    description:
      - Keep a failed first install (for debugging) instead of uninstalling it. The next run
        upgrades it.
    type: bool
    default: false
  create_namespace:
    description:
      - Create the namespace on install (C(helm --create-namespace)); else it must exist.
    type: bool
    default: false
  history_max:
    description:
      - Revisions helm keeps (C(--history-max)), 0 (no limit) to 1000.
    type: int
    default: 10
  lock:
    description:
      - Hold the release's Lease while changing it. Needs C(get), C(create), C(update) and
        C(delete) on C(leases.coordination.k8s.io) in the namespace.
    type: bool
    default: true
  lock_ttl:
    description:
      - Seconds after its holder stops renewing it that the Lease counts as expired, 15 to 3600.
    type: int
    default: 60
  cleanup_failed_hooks:
    description:
      - Delete failed hook Jobs of failed revisions before installing or upgrading.
    type: bool
    default: true
  rollback:
    description:
      - Roll a failed upgrade back to the last good revision. V(false) leaves the failed revision
        in place and returns RV(failure.last_good_revision), for a caller that must first put the
        database back (Coder's migrations only go forward; the helm_release role does this).
    type: bool
    default: true
  health_check_service:
    description:
      - The health gate. Once helm says the release is ready (install, upgrade, rollback), ask
        Coder itself through the API server's service proxy, C(<service>:<port>) such as
        V(coder:80) (v2 chart) or V(coderd:80) (v1 chart). C(/healthz) must answer and
        C(/api/v2/buildinfo) must report the expected version within O(health_check_timeout).
      - A failed gate is a failed install or upgrade (RV(reason=health_gate)), rolled back like
        one. Unset, there is no gate.
    type: str
  health_check_version:
    description:
      - The Coder version C(/api/v2/buildinfo) must report after an install or upgrade, with or
        without the leading V(v). Default the new revision's chart C(appVersion); set it when the
        values set another image tag. After a rollback the old revision's C(appVersion) counts.
    type: str
  health_check_timeout:
    description:
      - Seconds the health gate waits for Coder to answer at the expected version. 1 to 3600.
    type: int
    default: 120
notes:
  - "Why not M(kubernetes.core.helm): it sits out the whole timeout while pods crash loop, rolls
    back only through C(--atomic) (helm's choice, no way to keep a failed first install), does
    not see a stuck C(pending-*) release nor tell it from a live run, prints nothing while it
    waits and only helm's last line on failure, and knows helm 3's flags only."
  - Progress is printed live when the task runs on the controller with the C(local) connection
    (the usual way, as with kubernetes.core); the action plugin then runs the work in-process.
    On another connection, or with C(become), the module runs on the target and its progress
    lines come back in RV(progress) at the end.
seealso:
  - module: coderops.deploy.coder_helm_release_info
  - module: coderops.deploy.coder_values
  - module: kubernetes.core.helm
"""

EXAMPLES = r"""
- name: Build the values
  coderops.deploy.coder_values:
    host: db.example.internal
    port: 5432
    user: coder
    database: coder
    password_secret: coder-db-password
  register: coder_values

- name: Install or upgrade Coder, rolling back to the last good revision on failure
  coderops.deploy.coder_helm_release:
    name: coder
    namespace: coder
    chart_ref: coder/coder
    chart_repo_url: https://helm.coder.com
    chart_version: 1.44.0
    values: "{{ coder_values.values }}"
    timeout: 300
  register: coder_release

- name: Show where Coder is
  ansible.builtin.debug:
    msg: "{{ coder_release.msg }}"

- name: Recover a release left pending-upgrade by a killed run
  coderops.deploy.coder_helm_release:
    name: coder
    namespace: coder
    chart_ref: coder/coder
    chart_repo_url: https://helm.coder.com
    values: "{{ coder_values.values }}"
    recover_pending: true

- name: Roll back to revision 4
  coderops.deploy.coder_helm_release:
    name: coder
    namespace: coder
    state: rolled_back
    revision: 4

- name: Upgrade with a ServiceAccount token instead of a kubeconfig (under AWX, its bearer-token
    credential's K8S_AUTH_HOST, K8S_AUTH_API_KEY and K8S_AUTH_SSL_CA_CERT do the same without any option)
  coderops.deploy.coder_helm_release:
    name: coder
    namespace: coder
    chart_ref: coder/coder
    chart_repo_url: https://helm.coder.com
    values: "{{ coder_values.values }}"
    host: https://api.example.com:6443
    api_key: "{{ vault_deployer_token }}"
    ca_cert: files/cluster-ca.pem

- name: Uninstall with helm 4
  coderops.deploy.coder_helm_release:
    name: coder
    namespace: coder
    state: absent
    helm_binary: /usr/local/bin/helm4
"""

RETURN = r"""
health:
  description:
    - The health gate's last answer (with O(health_check_service)) after the install, upgrade
      or rollback this run made.
  returned: when the gate ran
  type: dict
  contains:
    ok:
      description: Whether Coder answered at the expected version in time.
      type: bool
    service:
      description: The Service asked, as given.
      type: str
    expected_version:
      description: The version wanted, C(v) first, as buildinfo writes it.
      type: str
      sample: v2.31.0
    version:
      description: The version C(/api/v2/buildinfo) last reported; V(null) when it did not answer.
      type: str
    error:
      description: Why the gate did not pass; V(null) when it passed.
      type: str
    elapsed_s:
      description: Seconds the gate took.
      type: float
health_after_rollback:
  description: The health gate's answer after the automatic rollback of a failed install or upgrade.
  returned: when a failed upgrade was rolled back with O(health_check_service) set
  type: dict
operation:
  description: What ran - V(install), V(upgrade), V(rollback), V(uninstall), V(recover) (check mode) or V(none).
  returned: success, and failures after the release was read
  type: str
  sample: upgrade
msg:
  description:
    - One line on success (revision, chart, access URL).
    - On failure, the summary (the same text as RV(summary) when a helm operation failed).
  returned: always
  type: str
  sample: "release coder in namespace coder upgraded to revision 5 (coder-1.44.0, deployed); Coder is at http://203.0.113.7"
revision:
  description: The release's newest revision at the end.
  returned: when the release exists
  type: int
  sample: 5
status:
  description: Status of that revision.
  returned: when the release exists
  type: str
  sample: deployed
chart:
  description: Chart name and version of the newest revision (or the wanted chart).
  returned: with O(state=present), and when the release exists
  type: str
  sample: coder-1.44.0
chart_version:
  description: Version of the wanted chart.
  returned: with O(state=present)
  type: str
  sample: 1.44.0
app_version:
  description: C(appVersion) of the wanted chart.
  returned: with O(state=present)
  type: str
  sample: 1.44.0
access_url:
  description:
    - The Ingress host (https with TLS), else the address of a LoadBalancer Service.
    - V(null) when neither exists yet.
  returned: on success with O(state=present) or O(state=rolled_back)
  type: str
  sample: http://203.0.113.7
rolled_back_to:
  description: The revision rolled back to (after a failure, or with O(state=rolled_back)).
  returned: when a rollback ran
  type: int
  sample: 3
failed_revision:
  description: The revision that failed.
  returned: when an install or upgrade failed
  type: int
  sample: 4
summary:
  description:
    - The failure summary - cause, helm's error, pods not ready and why, recent Events, and the
      rollback's outcome.
  returned: when an install or upgrade failed
  type: str
failure:
  description: The summary's parts.
  returned: when an install or upgrade failed
  type: dict
  contains:
    operation:
      description: V(install) or V(upgrade).
      type: str
    stopped:
      description: Why the run stopped helm early (fail-fast or cancellation); V(null) otherwise.
      type: str
    elapsed_s:
      description: Seconds the failed operation ran.
      type: float
    timeout:
      description: O(timeout).
      type: int
    cause:
      description:
        - V(fail_fast), V(timeout), V(health_gate) (helm said ready, Coder did not answer at the
          version), V(hook_failed), V(immutable_field), V(rejected), V(cancelled), V(in_progress),
          V(api_unreachable) (helm could not reach the API server) or V(helm_error).
      type: str
    helm_error:
      description: What helm said (without helm 4's log lines, shortened).
      type: str
    last_good_revision:
      description: The revision a rollback goes to (V(null) for a first install).
      type: int
    rollback_left:
      description: Whether the failed revision was left in place (O(rollback=false)).
      type: bool
    rollback_error:
      description:
        - What the rollback (or the uninstall of a failed first install) said when it failed too.
        - V(null) otherwise.
      type: str
    rolled_back_to:
      description: The last good revision rolled back to.
      type: int
    uninstalled:
      description: Whether a failed first install was uninstalled.
      type: bool
    pods:
      description: Pods of the new template that were not ready - pod, reason, message, fatal.
      type: list
      elements: dict
    pods_ready:
      description: Ready pods out of desired, as C(ready/desired).
      type: str
    events:
      description: Recent Events of the namespace (Warnings first) - time, type, reason, object, message, count.
      type: list
      elements: dict
    hook_jobs:
      description: Hook Jobs of the failed revision that failed - job, reason, message.
      type: list
      elements: dict
    api_server:
      description:
        - When the API server went away during the operation - url, error, away_s (how long the
          watcher saw it away), back_during_helm, waited_s (how long the run waited for it after
          helm ended), budget_s, back, last_error.
        - V(null) when it answered throughout.
      type: dict
reason:
  description:
    - Why the run failed; RV(failure.cause) for a failed operation, else V(invalid_options),
      V(pending), V(in_progress), V(recovery_failed), V(no_good_revision), V(absent),
      V(health_gate) (after a rollback of O(state=rolled_back)),
      V(api_unreachable) (the API server went away and did not come back in time) or V(error).
  returned: failure
  type: str
  sample: pending
field:
  description: The option at fault, for bad input.
  returned: when the input is to blame
  type: str
  sample: chart_version
recovered:
  description: The recovery of a stuck C(pending-*) release (from_status, from_revision, action, ok).
  returned: when O(recover_pending) recovered the release
  type: dict
lock_left:
  description:
    - The Lease that could not be deleted because the API server did not answer; it expires by
      itself O(lock_ttl) seconds after its last renewal.
  returned: when the Lease could not be deleted
  type: str
  sample: coder-coderops-lock
reason_for_operation:
  description:
    - Why RV(operation) was chosen - for example what differs between the deployed revision and
      the wanted chart and values.
  returned: with O(state=present), once the release's history was read
  type: str
  version_added: 0.2.0
would_remove_hook_jobs:
  description: In check mode, the failed hook Jobs that the operation would delete first.
  returned: check mode, when the operation would run
  type: list
  elements: str
  version_added: 0.2.0
removed_hook_jobs:
  description: Failed hook Jobs deleted before the operation.
  returned: when some were deleted
  type: list
  elements: str
history:
  description:
    - The last 10 revisions - revision, status, chart, app_version (the chart's appVersion),
      updated, description.
  returned: when the release exists
  type: list
  elements: dict
helm_version:
  description: Version of the helm binary used.
  returned: when helm was found
  type: str
  sample: 3.17.2
helm_major:
  description: Major version of helm, 3 or 4.
  returned: when helm was found
  type: int
  sample: 3
progress:
  description: The progress lines of the run.
  returned: always
  type: list
  elements: str
duration_s:
  description: Seconds the run took.
  returned: always
  type: float
  sample: 42.3
"""

import signal

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.coderops.deploy.plugins.module_utils._helm_release import Cancel, ReleaseManager
from ansible_collections.coderops.deploy.plugins.module_utils._release_params import release_argument_spec


def main():
    module = AnsibleModule(argument_spec=release_argument_spec(), supports_check_mode=True)
    cancel = Cancel()

    def _cancel(signum, frame):
        cancel.request(f"received {signal.Signals(signum).name}")

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _cancel)
    result = ReleaseManager(module.params, cancel=cancel, check_mode=module.check_mode,
                            diff=module._diff).run()
    if result.pop("failed", False):
        msg = result.pop("msg")
        module.fail_json(msg=msg, **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
