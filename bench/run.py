#!/usr/bin/env python3
"""make bench: coderops.deploy against what an operator would use instead, on the test bed.

B1 no-op re-run, B2 first install (deploy_coder.yml vs a shell script doing the guide by hand vs
a plain kubernetes.core playbook), B3 facts (coder_pg_facts vs community.postgresql), B4 time to
recover from a crash-looping upgrade (the collection's fail-fast rollback vs helm's own), B5
scale (1, 10, 50 releases in one run, forks 10), B6 time until Coder is healthy again after an
upgrade that migrated the database and failed (real pods on the real node; the collection's
backup, restore and rollback vs helm's own), and whether it ends healthy at all. Everything is
real: the playbooks, helm, kubectl, the test bed's Kubernetes and PostgreSQL. See
docs/performance.md.

    make bench               # the full run: 5 repetitions, results in bench/results/<date>.md
    make bench QUICK=1       # 1 repetition, B4 timeout 60 s, B5 sizes 1 and 10: a smoke run
                             # whose numbers are not results (written to tests/output/bench/)

Environment: QUICK=1; BENCH_REPS (default 5, at least 5 for a full run; B6 takes 3 of its own,
QUICK 1, as its runs start real pods: with BENCH_ONLY=B6 alone BENCH_REPS sets B6's, default and
minimum 3); BENCH_ONLY=B1,B3 (a subset, results not published to docs/); BENCH_QUIET_WAIT
(seconds to wait for a load average below BENCH_QUIET_LOAD, default 600 and 1.0).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import secrets
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

import report  # noqa: E402
from common import (  # noqa: E402
    CHART,
    CONTENDERS,
    REPO,
    BenchError,
    HealthPoller,
    PgActivity,
    ReleaseWatch,
    Runs,
    Sampler,
    delete_namespaces,
    helm_history,
    json_task_durations,
    kubectl,
    load_env,
    loadavg,
    now_iso,
    summary,
    which,
)
from pgserver import BenchServer  # noqa: E402

PLAYBOOK = REPO / "playbooks" / "deploy_coder.yml"
INVENTORY = REPO / "inventories" / "testbed.yml"
B4_TIMEOUT = 300
B5_FORKS = 10
# B6: the v2 stand-in chart packaged as 2.30.0 (set-up), upgraded to the chart as it is (2.31.0)
# whose new pods migrate the database (schema 4 -> 5) and exit.
CHART_V2 = REPO / "tests" / "charts" / "coder-v2"
B6_OLD, B6_NEW = "2.30.0", "2.31.0"
B6_FAIL_ENV = [{"name": "STANDIN_FAIL", "value": "after-migrate"}]
B6_REPS = 3
B6_TIMEOUT = 120        # helm's --timeout, both contenders (QUICK 60)
B6_CAP = 240            # from the start of the upgrade: not healthy by then is "never" (QUICK 150)
B6_SETTLE = 10          # healthy for this long, with the run over, is "healthy again"
B6_RESTART_CAP = 90     # after deleting Coder's pods, until healthy again (QUICK 60)


def say(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def rotate(items, k):
    k %= len(items)
    return items[k:] + items[:k]


class Bench:
    def __init__(self, quick, reps, only, b6_reps=None):
        self.quick = quick
        self.reps = reps
        self.b6_reps = b6_reps or (1 if quick else B6_REPS)
        self.only = only
        self.env = load_env()
        self.run_id = secrets.token_hex(2)
        self.out_dir = REPO / "tests" / "output" / "bench"
        self.work = self.out_dir / f"work-{self.run_id}"
        self.work.mkdir(parents=True, exist_ok=True)
        self.work.chmod(0o700)
        self.runs = Runs(self.out_dir / f"logs-{self.run_id}", self.env)
        self.password = Path(self.env["CODER_TEST_PG_PASSWORD_FILE"]).read_bytes()
        self.namespaces = set()
        self.databases = set()
        self.leaks = []
        self.server = None
        self.values_file = None
        self.results = {"run_id": self.run_id, "quick": quick, "reps": reps, "started": now_iso(),
                        "phases": {}}
        self.b4_timeout = 45 if quick else B4_TIMEOUT
        self.b6_timeout = 60 if quick else B6_TIMEOUT
        self.b6_cap = 150 if quick else B6_CAP
        self.b6_restart_cap = 60 if quick else B6_RESTART_CAP

    # -- contenders --------------------------------------------------------------------------

    def vars_file(self, values):
        path = self.work / f"vars-{secrets.token_hex(4)}.json"
        path.write_text(json.dumps(values))
        return path

    def collection_cmd(self, extra_vars=None, inventory=INVENTORY, args=()):
        cmd = [self.env_bin("ansible-playbook"), "-i", inventory, PLAYBOOK, *args]
        if extra_vars:
            cmd += ["-e", f"@{self.vars_file(extra_vars)}"]
        return cmd

    def env_bin(self, name):
        return REPO / ".venv" / "bin" / name

    def ns(self, *parts):
        name = "-".join(["bench", *map(str, parts), self.run_id])
        self.namespaces.add(name)
        return name

    def start_contender(self, contender, ns, helm="helm3", extra_vars=None, tag=None):
        tag = tag or f"{contender}-{ns}"
        if contender == "collection":
            return self.runs.start(self.collection_cmd(extra_vars), tag,
                                   {"CODER_NAMESPACE": ns, "CODER_TEST_HELM": helm})
        if contender == "shell":
            return self.runs.start([CONTENDERS / "manual.sh", ns, CHART, self.values_file], tag,
                                   {"HELM": helm})
        if contender == "kubernetes.core":
            return self.runs.start([self.env_bin("ansible-playbook"), "-i", INVENTORY,
                                    CONTENDERS / "kubernetes_core.yml"], tag,
                                   {"CODER_NAMESPACE": ns, "BENCH_CHART": str(CHART),
                                    "BENCH_VALUES": str(self.values_file),
                                    "BENCH_HELM_PATH": which(helm, self.env)})
        raise ValueError(contender)

    def timed_contender(self, contender, ns, helm="helm3", expect_ok=True, **kw):
        started = self.start_contender(contender, ns, helm, **kw)
        rc, seconds = started.wait()
        if expect_ok and rc != 0:
            raise BenchError(f"{contender} in {ns} failed (exit {rc}); see {started.log}")
        return seconds, rc, started.log

    # -- shared set-up -----------------------------------------------------------------------

    def prepare_values(self):
        """Install the collection once and keep its values: the other contenders use the same."""
        ns = self.ns("b1", "collection")
        say(f"set-up: deploy_coder.yml into {ns} (its values are the contenders' values)")
        self.timed_contender("collection", ns)
        out = subprocess.run(["helm3", "get", "values", "coder", "-n", ns, "-o", "json"], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        if self.password.decode() in out:
            raise BenchError("the collection's Helm values contain the password")
        self.values_file = self.work / "values.json"
        fd = os.open(self.values_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(out)
        return ns

    def sampler(self, **kw):
        s = Sampler(self.password, **kw)
        s.start()
        return s

    def end_sampler(self, s):
        s.stop()
        self.leaks += s.leaks
        return s

    def phase(self, key, data):
        data.setdefault("load_end", loadavg())
        self.results["phases"][key] = data
        (self.work / "partial.json").write_text(json.dumps(self.results, indent=1, default=str))

    # -- B1 ----------------------------------------------------------------------------------

    def b1(self, coll_ns):
        contenders = ["collection", "shell", "kubernetes.core"]
        nss = {"collection": coll_ns, "shell": self.ns("b1", "shell"), "kubernetes.core": self.ns("b1", "k8score")}
        data = {"load_start": loadavg(), "runs": []}
        for c in contenders[1:]:
            say(f"B1 set-up: first install by {c} into {nss[c]}")
            self.timed_contender(c, nss[c])
        if not self.quick:
            say("B1 warm-up: one unmeasured no-op run each")
            for c in contenders:
                self.timed_contender(c, nss[c])
        s = self.sampler(interval=0.5)
        for rep in range(self.reps):
            for c in rotate(contenders, rep):
                before = len(helm_history(self.env, nss[c]))
                seconds, _, log = self.timed_contender(c, nss[c])
                after = helm_history(self.env, nss[c])
                new = len(after) - before
                if after[-1]["status"] != "deployed":
                    raise BenchError(f"B1 {c}: release not deployed after the run ({log})")
                data["runs"].append({"contender": c, "rep": rep, "seconds": seconds, "new_revisions": new})
                say(f"B1 rep {rep + 1}/{self.reps} {c}: {seconds:.2f} s, {new} new revision(s)")
        self.end_sampler(s)
        data["summary"] = {c: summary([r["seconds"] for r in data["runs"] if r["contender"] == c])
                           for c in contenders}
        data["new_revisions"] = {c: sorted({r["new_revisions"] for r in data["runs"] if r["contender"] == c})
                                 for c in contenders}
        self.phase("B1", data)
        delete_namespaces(self.env, nss.values())

    # -- B2 ----------------------------------------------------------------------------------

    def b2(self):
        contenders = ["collection", "shell", "kubernetes.core"]
        data = {"load_start": loadavg(), "runs": []}
        created = []
        s = self.sampler(interval=0.5)
        for rep in range(self.reps):
            for c in rotate(contenders, rep):
                ns = self.ns("b2", c.replace(".", ""), rep)
                created.append(ns)
                seconds, _, log = self.timed_contender(c, ns)
                hist = helm_history(self.env, ns)
                if len(hist) != 1 or hist[0]["status"] != "deployed":
                    raise BenchError(f"B2 {c}: expected one deployed revision in {ns} ({log})")
                data["runs"].append({"contender": c, "rep": rep, "seconds": seconds})
                say(f"B2 rep {rep + 1}/{self.reps} {c}: {seconds:.2f} s")
        self.end_sampler(s)
        data["summary"] = {c: summary([r["seconds"] for r in data["runs"] if r["contender"] == c])
                           for c in contenders}
        self.phase("B2", data)
        delete_namespaces(self.env, created)

    # -- B3 ----------------------------------------------------------------------------------

    FACT_TASKS = {
        "coder_pg_facts": ("facts_coder.yml", ["Read the PostgreSQL server's facts"]),
        "community.postgresql": ("facts_community.yml", ["Version, settings and recovery state",
                                                         "User, database, connections in use and TLS"]),
    }

    def b3_run(self, contender, tag):
        playbook, tasks = self.FACT_TASKS[contender]
        off = self.server.log_offset()
        started = self.runs.start([self.env_bin("ansible-playbook"), "-i", INVENTORY, CONTENDERS / playbook], tag,
                                  {"BENCH_PG_HOST": "127.0.0.1", "BENCH_PG_PORT": str(self.server.port),
                                   "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json"})
        rc, seconds = started.wait()
        if rc != 0:
            raise BenchError(f"B3 {contender} failed (exit {rc}); see {started.log}")
        time.sleep(0.3)  # the disconnection lines
        activity = self.server.activity(off)
        durations = json_task_durations(Path(started.log).read_text().split("\n", 1)[1])
        task_s = sum(durations.get(t, 0.0) for t in tasks)
        return {"contender": contender, "seconds": seconds, "task_seconds": task_s, **activity}

    def b3(self):
        contenders = list(self.FACT_TASKS)
        data = {"load_start": loadavg(), "runs": [], "server_version": self.server.version()}
        if not self.quick:
            say("B3 warm-up: one unmeasured run each")
            for c in contenders:
                self.b3_run(c, f"b3-warmup-{c}")
        s = self.sampler(interval=0.5)
        for rep in range(self.reps):
            for c in rotate(contenders, rep):
                r = self.b3_run(c, f"b3-{c}-{rep}")
                r["rep"] = rep
                data["runs"].append(r)
                say(f"B3 rep {rep + 1}/{self.reps} {c}: playbook {r['seconds']:.2f} s, facts tasks"
                    f" {r['task_seconds']:.2f} s, {r['authorised']} connection(s), {r['statements']} statement(s)")
        self.end_sampler(s)
        data["summary"] = {}
        for c in contenders:
            rows = [r for r in data["runs"] if r["contender"] == c]
            data["summary"][c] = {k: summary([r[k] for r in rows])
                                  for k in ("seconds", "task_seconds", "authorised", "received", "statements")}
        self.phase("B3", data)

    # -- B4 ----------------------------------------------------------------------------------

    def b4(self):
        helms = ["helm3", "helm4"]
        reps = self.reps
        data = {"load_start": loadavg(), "timeout": self.b4_timeout, "runs": []}
        coll = {h: self.ns("b4", "coll", h) for h in helms}
        own = {(h, k): self.ns("b4", "own", h, k) for h in helms for k in range(reps)}
        # Every release starts from the same first revision: the contenders' values, installed
        # by helm (the shell script); the collection's first install is measured in B2.
        say(f"B4 set-up: {len(coll) + len(own)} releases installed with the shell script")
        for (h, _k), ns in list(((h, None), coll[h]) for h in helms) + list(own.items()):
            self.timed_contender("shell", ns, helm=h, tag=f"b4-setup-{ns}")
        say(f"B4 set-up done; starting helm's own rollback ({reps} x helm 3 --atomic, {reps} x helm 4"
            f" --rollback-on-failure, timeout {self.b4_timeout} s) in the background")
        s = self.sampler(interval=0.5)
        slow = []
        for (h, k), ns in own.items():
            base = int(helm_history(self.env, ns, h)[-1]["revision"])
            watch = ReleaseWatch(ns, self.env["KUBECONFIG"])
            watch.start()
            watch.ready.wait(30)
            started = self.runs.start([CONTENDERS / "helm_own_rollback.sh", ns, CHART, self.values_file,
                                       self.b4_timeout, "--set", "testing.failPods=crashloop"],
                                      f"b4-own-{h}-{k}", {"HELM": h})
            slow.append((h, k, ns, base, watch, started))
            time.sleep(1)
        overrides = {"coder_values_overrides": {"testing": {"failPods": "crashloop"}},
                     "coder_helm_timeout": self.b4_timeout}
        for rep in range(reps):
            for h in rotate(helms, rep):
                ns = coll[h]
                base = int(helm_history(self.env, ns, h)[-1]["revision"])
                watch = ReleaseWatch(ns, self.env["KUBECONFIG"])
                watch.start()
                watch.ready.wait(30)
                started = self.start_contender("collection", ns, h, extra_vars=overrides, tag=f"b4-coll-{h}-{rep}")
                rc, exit_s = started.wait()
                row = self._b4_row("collection", h, rep, ns, base, watch, started, rc, exit_s)
                data["runs"].append(row)
                say(f"B4 rep {rep + 1}/{reps} collection ({h}): recovered after {row['recovered_s']:.1f} s"
                    f" (process ended after {exit_s:.1f} s)")
        say("B4: waiting for helm's own rollbacks")
        for h, k, ns, base, watch, started in slow:
            rc, exit_s = started.wait(self.b4_timeout + 600)
            row = self._b4_row("helm", h, k, ns, base, watch, started, rc, exit_s)
            data["runs"].append(row)
            say(f"B4 helm's own ({h}) #{k + 1}: recovered after {row['recovered_s']:.1f} s")
        self.end_sampler(s)
        data["summary"] = {}
        for c in ("collection", "helm"):
            for h in helms:
                rows = [r for r in data["runs"] if r["contender"] == c and r["helm"] == h]
                data["summary"][f"{c}/{h}"] = {"recovered_s": summary([r["recovered_s"] for r in rows]),
                                              "exit_s": summary([r["exit_s"] for r in rows])}
        self.phase("B4", data)
        delete_namespaces(self.env, list(coll.values()) + list(own.values()))

    def _b4_row(self, contender, helm, rep, ns, base, watch, started, rc, exit_s):
        # The good revision `base`; the failed upgrade is base+1; the rollback is base+2 or later.
        t = watch.first(lambda rev, status: rev >= base + 2 and status == "deployed")
        watch.stop()
        hist = helm_history(self.env, ns, helm)
        last = hist[-1]
        ok = (rc != 0 and t is not None and last["status"] == "deployed"
              and last["description"].startswith(f"Rollback to {base}"))
        if not ok:
            raise BenchError(f"B4 {contender} ({helm}) in {ns}: expected a failed run and a rollback to"
                             f" revision {base} (exit {rc}, newest revision {last['revision']}"
                             f" {last['status']}: {last['description']}); see {started.log}")
        return {"contender": contender, "helm": helm, "rep": rep, "recovered_s": t - started.start,
                "exit_s": exit_s, "failed_revision": base + 1, "rollback_revision": int(last["revision"])}

    # -- B5 ----------------------------------------------------------------------------------

    def b5_inventory(self, namespaces):
        with open(INVENTORY) as fh:
            base = yaml.safe_load(fh)
        group_vars = dict(base["all"]["vars"])
        template = dict(next(iter(base["all"]["hosts"].values())))
        group_vars.update(coder_chart_ref=str(CHART), coder_db_host="127.0.0.1",
                          coder_db_port=str(self.server.port))
        hosts = {f"release{i:02d}": dict(template, coder_namespace=ns) for i, ns in enumerate(namespaces)}
        path = self.work / f"b5-inventory-{len(namespaces)}-{secrets.token_hex(2)}.yml"
        path.write_text(json.dumps({"all": {"hosts": hosts, "vars": group_vars}}, indent=1))
        return path

    def b5(self):
        sizes = [1, 5] if self.quick else [1, 10, 50]
        data = {"load_start": loadavg(), "forks": B5_FORKS, "runs": []}
        pg = PgActivity(self.server.socket_dir, self.server.port)
        try:
            for rep in range(self.reps):
                for size in rotate(sizes, rep):
                    nss = [self.ns("b5", size, rep, i) for i in range(size)]
                    inv = self.b5_inventory(nss)
                    off = self.server.log_offset()
                    load0 = loadavg()
                    started = self.runs.start(
                        self.collection_cmd({"coder_deploy_hosts": "all"}, inventory=inv,
                                            args=("--forks", str(B5_FORKS))),
                        f"b5-{size}-{rep}", {"CODER_TEST_HELM": "helm3"})
                    s = self.sampler(interval=0.25, pg=pg, roots=lambda p=started.proc.pid: {p})
                    rc, seconds = started.wait()
                    log = started.log
                    self.end_sampler(s)
                    deployed = kubectl(self.env, "get", "secrets", "-A", "-l", "owner=helm,name=coder,status=deployed",
                                       "-o", "jsonpath={.items[*].metadata.namespace}").stdout.split()
                    ok = sum(1 for n in nss if n in deployed)
                    if rc != 0 or ok != size:
                        raise BenchError(f"B5 {size} releases: exit {rc}, {ok} deployed; see {log}")
                    time.sleep(0.3)
                    act = self.server.activity(off)
                    row = {"size": size, "rep": rep, "seconds": seconds, "per_release": seconds / size,
                           "peak_pg": s.peak_pg, "peak_pg_log": act["peak"], "peak_helm": s.peak_helm,
                           "connections": act["authorised"], "samples": s.samples, "load_before": load0}
                    data["runs"].append(row)
                    say(f"B5 rep {rep + 1}/{self.reps} {size} release(s): {seconds:.1f} s"
                        f" ({seconds / size:.2f} s per release), peak {act['peak']} PostgreSQL connection(s)"
                        f" ({s.peak_pg} sampled),"
                        f" peak {s.peak_helm} helm process(es), {act['authorised']} connection(s) in all")
                    delete_namespaces(self.env, nss)
        finally:
            pg.close()
        data["summary"] = {}
        for size in sizes:
            rows = [r for r in data["runs"] if r["size"] == size]
            data["summary"][str(size)] = {k: summary([r[k] for r in rows])
                                          for k in ("seconds", "per_release", "peak_pg", "peak_pg_log", "peak_helm",
                                                    "connections")}
        self.phase("B5", data)

    # -- B6 ----------------------------------------------------------------------------------

    def pg_exec(self, sql, args=(), database="postgres"):
        """As the superuser of the test bed's server `main`, over its Unix socket (no password)."""
        import psycopg2  # from the venv (requirements.txt)

        conn = psycopg2.connect(host=self.env["CODER_TEST_PG_MAIN_SOCKET_DIR"],
                                port=self.env["CODER_TEST_PG_MAIN_PORT"], user="postgres", dbname=database)
        conn.autocommit = True
        try:
            with conn.cursor() as cur:
                cur.execute(sql, args)
                return cur.fetchall() if cur.description else None
        finally:
            conn.close()

    def drop_databases(self, names):
        for db in sorted(names):
            self.pg_exec(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
            self.databases.discard(db)

    def b6_older_chart(self):
        out = self.work / "b6-chart"
        out.mkdir(exist_ok=True)
        subprocess.run(["helm3", "package", str(CHART_V2), "--version", B6_OLD, "--app-version", B6_OLD,
                        "-d", str(out)], env=self.env, check=True, capture_output=True)
        return out / f"coder-{B6_OLD}.tgz"

    def b6_place(self, contender, helm, rep, older_chart):
        """Not timed: a namespace on the real node, a database of its own, Coder 2.30.0 installed
        by the collection with the contender's helm, healthy, schema version 4."""
        ns = self.ns("b6", "coll" if contender == "collection" else "own", helm, rep)
        kubectl(self.env, "create", "namespace", ns)
        for key, value in json.loads(self.env["CODER_TEST_REAL_NODE_ANNOTATIONS"]).items():
            kubectl(self.env, "annotate", "namespace", ns, f"{key}={value}")
        db = f"coderops_bench_b6_{self.run_id}_{secrets.token_hex(3)}"
        self.databases.add(db)
        self.pg_exec(f'CREATE DATABASE "{db}" OWNER "{self.env["CODER_TEST_PG_MAIN_USER"]}"')
        backups = self.work / "b6-backups" / ns
        backups.mkdir(parents=True)
        backups.parent.chmod(0o700)
        backups.chmod(0o700)
        base = {"coder_chart_generation": "v2", "coder_chart_ref": str(older_chart),
                "coder_db_host": self.env["CODER_TEST_POD_DB_HOST"], "coder_db_name": db,
                "coder_health_check": True, "coder_backup": True, "coder_backup_dir": str(backups)}
        self.timed_contender("collection", ns, helm, extra_vars=base, tag=f"b6-setup-{ns}")
        probe = HealthPoller(ns, self.env["KUBECONFIG"], B6_OLD)
        deadline = time.monotonic() + 60
        while not (answer := probe.ask())[0]:
            if time.monotonic() > deadline:
                raise BenchError(f"B6 set-up: Coder {B6_OLD} in {ns} is not healthy after its install"
                                 f" ({answer[1]})")
            time.sleep(1)
        schema = self.pg_exec("SELECT version, dirty FROM schema_migrations", database=db)
        if schema != [(4, False)]:
            raise BenchError(f"B6 set-up: schema {schema} in {db}, expected version 4")
        return ns, db, base

    def b6_own_values(self, ns, helm):
        """helm's own upgrade gets the values the collection installed 2.30.0 with (they only name
        the Secrets) plus the failing env, as coder_extra_envs adds it (after the collection's)."""
        out = subprocess.run([helm, "get", "values", "coder", "-n", ns, "-o", "json"], env=self.env,
                             capture_output=True, text=True, check=True).stdout
        if self.password.decode() in out:
            raise BenchError("the collection's Helm values contain the password")
        values = json.loads(out)
        values.setdefault("coder", {}).setdefault("env", []).extend(B6_FAIL_ENV)
        path = self.work / f"b6-values-{ns}.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(values, fh)
        return path

    def b6_run(self, contender, helm, rep, older_chart):
        ns, db, base = self.b6_place(contender, helm, rep, older_chart)
        if contender == "collection":
            newer = {**base, "coder_chart_ref": str(CHART_V2), "coder_extra_envs": B6_FAIL_ENV,
                     "coder_helm_timeout": self.b6_timeout}
            cmd, extra = self.collection_cmd(newer), {"CODER_NAMESPACE": ns, "CODER_TEST_HELM": helm}
        else:
            cmd = [CONTENDERS / "helm_own_rollback.sh", ns, CHART_V2, self.b6_own_values(ns, helm), self.b6_timeout]
            extra = {"HELM": helm}
        poller = HealthPoller(ns, self.env["KUBECONFIG"], B6_OLD)
        poller.start()
        started = self.runs.start(cmd, f"b6-{contender}-{helm}-{rep}", extra)
        deadline = started.start + self.b6_cap
        # Until the run is over and Coder has been healthy for B6_SETTLE s since, or the cap.
        while time.monotonic() < deadline:
            since = poller.healthy_since()
            now = time.monotonic()
            if (started.end is not None and since is not None
                    and now - max(since, started.end) >= B6_SETTLE):
                break
            time.sleep(0.5)
        rc, exit_s = started.wait(max(1.0, deadline - time.monotonic()) + 60)
        observed = time.monotonic()
        poller.stop()
        since = poller.healthy_since()
        back = max(since, started.end) if since is not None and started.end is not None else None
        healthy_s = back - started.start if back is not None and back <= deadline else None
        first_down = next((t for t, ok, _ in poller.samples if not ok), None)
        hist = helm_history(self.env, ns, helm)
        last = hist[-1] if hist else {}
        schema = self.pg_exec("SELECT version, dirty FROM schema_migrations", database=db)
        # Whether it stays healthy once its pods start again (a node drain, an eviction, a crash):
        # delete them, wait until they are gone, then ask until healthy or the cap.
        t0 = time.monotonic()
        kubectl(self.env, "delete", "pods", "-n", ns, "-l",
                "app.kubernetes.io/name=coder,app.kubernetes.io/instance=coder",
                "--wait=true", "--timeout=90s", check=False, timeout=120)
        probe = HealthPoller(ns, self.env["KUBECONFIG"], B6_OLD)
        restart_s = None
        while time.monotonic() - t0 < self.b6_restart_cap:
            if probe.ask()[0]:
                restart_s = time.monotonic() - t0
                break
            time.sleep(1)
        row = {"contender": contender, "helm": helm, "rep": rep, "namespace": ns, "rc": rc, "exit_s": exit_s,
               "healthy_s": healthy_s, "observed_s": observed - started.start,
               "first_down_s": first_down - started.start if first_down is not None else None,
               "down_s": poller.down_seconds(started.start, observed), "samples": len(poller.samples),
               "final_revision": last.get("revision"), "final_status": last.get("status"),
               "final_app_version": last.get("app_version"), "final_description": last.get("description"),
               "schema_version": schema[0][0] if schema else None, "schema_dirty": schema[0][1] if schema else None,
               "restart_s": restart_s, "log": str(started.log)}
        if rc == 0:
            raise BenchError(f"B6 {contender} ({helm}) in {ns}: the failing upgrade succeeded; see {started.log}")
        delete_namespaces(self.env, [ns])
        self.drop_databases([db])
        return row

    def b6(self):
        helms = ["helm3", "helm4"]
        contenders = [(c, h) for h in helms for c in ("collection", "helm")]
        reps = self.b6_reps
        data = {"load_start": loadavg(), "timeout": self.b6_timeout, "cap": self.b6_cap, "settle": B6_SETTLE,
                "restart_cap": self.b6_restart_cap, "reps": reps, "from": B6_OLD, "to": B6_NEW, "runs": []}
        older_chart = self.b6_older_chart()
        s = self.sampler(interval=0.5)
        try:
            for rep in range(reps):
                for c, h in rotate(contenders, rep):
                    row = self.b6_run(c, h, rep, older_chart)
                    data["runs"].append(row)
                    healthy = "never healthy" if row["healthy_s"] is None else f"healthy after {row['healthy_s']:.1f} s"
                    restart = ("never" if row["restart_s"] is None else f"after {row['restart_s']:.1f} s")
                    say(f"B6 rep {rep + 1}/{reps} {'collection' if c == 'collection' else 'helm own'} ({h}): "
                        f"{healthy} (exit {row['rc']} after {row['exit_s']:.1f} s, down {row['down_s']:.1f} s); "
                        f"helm: revision {row['final_revision']} {row['final_status']} {row['final_app_version']};"
                        f" schema {row['schema_version']}; healthy after its pods restart: {restart}")
        finally:
            self.end_sampler(s)
        data["summary"] = {}
        for c, h in contenders:
            rows = [r for r in data["runs"] if r["contender"] == c and r["helm"] == h]
            data["summary"][f"{c}/{h}"] = {
                "runs": len(rows), "healthy_runs": sum(r["healthy_s"] is not None for r in rows),
                "restart_ok": sum(r["restart_s"] is not None for r in rows),
                "healthy_s": summary([r["healthy_s"] for r in rows]), "exit_s": summary([r["exit_s"] for r in rows]),
                "down_s": summary([r["down_s"] for r in rows]), "restart_s": summary([r["restart_s"] for r in rows]),
                "rc": sorted({r["rc"] for r in rows}),
                "final": sorted({f"{r['final_status']} {r['final_app_version']}" for r in rows}),
                "schema": sorted({r["schema_version"] for r in rows if r["schema_version"] is not None}),
            }
        self.phase("B6", data)

    # -- where the time goes (not timed: one profiled run each) -----------------------------

    def profile(self, coll_ns):
        """profile_tasks of a no-op and a first install, and the helm/kubectl commands each runs."""
        shims = self.work / "shims"
        shims.mkdir(exist_ok=True)
        calls = self.work / "calls.txt"
        for name in ("helm3", "helm4", "kubectl"):
            real = which(name, self.env)
            # Logs the subcommand only (two words), never the rest of the argument list.
            (shims / name).write_text(f'#!/bin/sh\necho "{name} $1 $2" >>"{calls}"\nexec "{real}" "$@"\n')
            (shims / name).chmod(0o755)
        env = {"PATH": f"{shims}:{self.env['PATH']}", "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
               "PROFILE_TASKS_TASK_OUTPUT_LIMIT": "all"}
        out = {}
        fresh = self.ns("profile", "install")
        for key, ns in (("noop", coll_ns), ("install", fresh)):
            calls.write_text("")
            rc, seconds, log = self.runs.timed(self.collection_cmd(), f"profile-{key}",
                                               dict(env, CODER_NAMESPACE=ns, CODER_TEST_HELM="helm3"))
            out[key] = {"seconds": seconds, "tasks": report.parse_profile(Path(log).read_text()),
                        "commands": [ln for ln in calls.read_text().splitlines() if ln.strip()]}
        self.phase("profile", out)
        delete_namespaces(self.env, [fresh])

    # -- the run -----------------------------------------------------------------------------

    def wait_quiet(self):
        limit = float(os.environ.get("BENCH_QUIET_LOAD", "1.0"))
        wait = 0 if self.quick else float(os.environ.get("BENCH_QUIET_WAIT", "600"))
        deadline = time.monotonic() + wait
        while True:
            load = loadavg()
            if load[0] <= limit:
                self.results["quiet"] = True
                break
            if time.monotonic() >= deadline:
                self.results["quiet"] = False
                say(f"load average {load} is above {limit}; running anyway (the results say so)")
                break
            say(f"load average {load} is above {limit}; waiting (up to {int(deadline - time.monotonic())} s more)")
            time.sleep(30)
        self.results["load_start"] = loadavg()

    def selected(self, key):
        return not self.only or key in self.only

    def run(self):
        t0 = time.monotonic()
        self.results["machine"] = report.machine_info(self.env)
        self.wait_quiet()
        say(f"run {self.run_id}: {self.reps} repetition(s){' (QUICK)' if self.quick else ''}; load {loadavg()}")
        if self.selected("B3") or self.selected("B5"):
            self.server = BenchServer(Path(self.env["CODER_TEST_PG_MAIN_SSLROOTCERT"]).parent,
                                      Path(self.env["CODER_TEST_PG_PASSWORD_FILE"])).start()
            self.results["bench_server"] = {"version": self.server.version(), "port": self.server.port}
        try:
            # B6 alone needs neither the contenders' v1 values nor the benchmark's own server.
            coll_ns = None
            if any(self.selected(k) for k in ("B1", "B2", "B4")) or (self.selected("profile") and not self.quick):
                coll_ns = self.prepare_values()
            if self.selected("profile") and not self.quick:
                self.profile(coll_ns)
            if self.selected("B3"):
                self.b3()
            if self.selected("B1"):
                self.b1(coll_ns)
            if self.selected("B2"):
                self.b2()
            if self.selected("B4"):
                self.b4()
            if self.selected("B5"):
                self.b5()
            if self.selected("B6"):
                self.b6()
        finally:
            say("cleaning up the namespaces, B6's databases and the benchmark's PostgreSQL server")
            try:
                delete_namespaces(self.env, self.namespaces & set(self._live_namespaces()))
                self.drop_databases(set(self.databases))
                shutil.rmtree(self.work / "b6-backups", ignore_errors=True)
            finally:
                if self.server:
                    self.check_leaks([self.server.log])
                    self.server.stop()
        self.check_leaks(self.runs.logs)
        self.results["finished"] = now_iso()
        self.results["load_end"] = loadavg()
        self.results["total_s"] = time.monotonic() - t0
        self.results["leaks"] = self.leaks
        if self.leaks:
            raise BenchError("the password was seen where it must never be: " + "; ".join(self.leaks[:5]))
        return self.results

    def _live_namespaces(self):
        return kubectl(self.env, "get", "namespaces", "-o", "jsonpath={.items[*].metadata.name}").stdout.split()

    def check_leaks(self, paths):
        pw = self.password
        for path in paths:
            if Path(path).exists() and pw in Path(path).read_bytes():
                self.leaks.append(f"log {path}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", default=os.environ.get("QUICK", "") not in ("", "0"))
    ap.add_argument("--reps", type=int, default=int(os.environ.get("BENCH_REPS", "0") or 0))
    ap.add_argument("--only", default=os.environ.get("BENCH_ONLY", ""))
    args = ap.parse_args()
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    # B6 starts real pods (and waits on helm's timeout): 3 repetitions, QUICK 1. Run alone, it
    # takes BENCH_REPS as its own (at least 3).
    b6_alone = only == {"B6"}
    least = B6_REPS if b6_alone else 5
    reps = args.reps or (1 if args.quick else least)
    if not args.quick and reps < least:
        ap.error(f"a full run takes at least {least} repetitions{' of B6' if b6_alone else ''}"
                 " (QUICK=1 for a smoke run)")
    bench = Bench(args.quick, reps, only, b6_reps=reps if b6_alone else None)
    try:
        results = bench.run()
    except BenchError as exc:
        say(f"FAILED: {exc}")
        return 1
    date = datetime.date.today().isoformat()
    publish = not args.quick and not only
    target_dir = REPO / "bench" / "results" if publish else bench.out_dir
    md, png = report.write(results, target_dir, date)
    raw = target_dir / f"{date}.json"
    raw.write_text(json.dumps(results, indent=1, default=str) + "\n")
    if publish:
        report.update_docs(REPO / "docs" / "performance.md", md, png)
    say(f"done in {results['total_s'] / 60:.1f} min: {md}, {png}, {raw}")
    print(Path(md).read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
