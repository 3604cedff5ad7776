"""The results of make bench: bench/results/<date>.md, the PNG chart, docs/performance.md."""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
from pathlib import Path

from common import REPO, fmt_s, ratio

DOC_BEGIN = "<!-- bench:begin (written by bench/run.py; edit the text outside these markers) -->"
DOC_END = "<!-- bench:end -->"

# The targets (issue 8), steered by, not asserted.
TARGETS = {
    "B1_shell": 1.0, "B1_k8s": 0.7, "B2_shell": 1.3, "B3_ratio": 0.5, "B3_connections": 1,
    "B4_ratio": 0.25, "B5_scaling": 1.2, "total_min": 30, "quick_min": 5,
    # issue 16: against the plain kubernetes.core playbook a user would write
    "B1_k8s_16": 1.0, "B2_k8s_16": 1.2,
}


def _cmd(args, env):
    try:
        proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout.strip()


def _collection_version(name):
    # .venv's Python version follows the Makefile (3.12 today): look in whichever it has.
    for site in sorted((REPO / ".venv" / "lib").glob("python3.*/site-packages/ansible_collections")):
        try:
            manifest = json.loads((site.joinpath(*name.split(".")) / "MANIFEST.json").read_text())
            return manifest["collection_info"]["version"]
        except (OSError, ValueError, KeyError):
            continue
    return "?"


def machine_info(env):
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(int(x.split()[1]) for x in Path("/proc/meminfo").read_text().splitlines()
                      if x.startswith("MemTotal"))
    except (OSError, StopIteration):
        mem_kb = 0
    server = {}
    try:
        server = json.loads(_cmd(["kubectl", "version", "-o", "json"], env) or "{}").get("serverVersion", {})
    except ValueError:
        pass
    pg_main = _cmd(["psql", "-X", "-At", "-h", env.get("CODER_TEST_PG_MAIN_SOCKET_DIR", ""), "-p",
                    env.get("CODER_TEST_PG_MAIN_PORT", ""), "-U", "postgres", "-d", "postgres", "-c",
                    "SHOW server_version"], dict(env, PGSSLMODE="disable"))
    ansible = _cmd([str(REPO / ".venv" / "bin" / "ansible"), "--version"], env).splitlines()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_kb / 1048576, 1),
        "kernel": platform.release(), "python": platform.python_version(),
        "ansible_core": re.sub(r"^.*core ([\d.]+).*$", r"\1", ansible[0]) if ansible else "?",
        "kubernetes_core": _collection_version("kubernetes.core"),
        "community_postgresql": _collection_version("community.postgresql"),
        "helm3": _cmd(["helm3", "version", "--short"], env), "helm4": _cmd(["helm4", "version", "--short"], env),
        "kubectl": _cmd(["kubectl", "version", "--client", "-o", "json"], env) and json.loads(
            _cmd(["kubectl", "version", "--client", "-o", "json"], env))["clientVersion"]["gitVersion"],
        "kubernetes": server.get("gitVersion", "?"),
        "postgresql_main": pg_main or "?",
        "git_commit": _cmd(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], env),
        "git_dirty": bool(_cmd(["git", "-C", str(REPO), "status", "--porcelain", "--", "plugins", "roles",
                                "playbooks"], env)),
    }


_PROFILE = re.compile(r"^(?P<name>.+?) -{2,} (?P<s>\d+\.\d+)s\s*$")


def parse_profile(output):
    """[(task, seconds)] from ansible.posix.profile_tasks' recap, slowest first."""
    rows = []
    recap = output.split("TASKS RECAP", 1)
    for line in (recap[1] if len(recap) > 1 else "").splitlines():
        m = _PROFILE.match(line.strip())
        if m:
            rows.append((m["name"].strip(), float(m["s"])))
    return sorted(rows, key=lambda r: -r[1])


def _verdict(ok):
    return "met" if ok else "**NOT MET**"


def targets(results):
    """[(target, measured, verdict)]"""
    ph = results["phases"]
    rows = []
    if "B1" in ph:
        s = ph["B1"]["summary"]
        r1, r2 = ratio(s["collection"], s["shell"]), ratio(s["collection"], s["kubernetes.core"])
        revs = ph["B1"]["new_revisions"]["collection"]
        rows.append(("B1 no-op: at most 1.0x the shell script", f"{r1:.2f}x", _verdict(r1 <= TARGETS["B1_shell"])))
        rows.append(("B1 no-op: at most 0.7x the kubernetes.core playbook", f"{r2:.2f}x",
                     _verdict(r2 <= TARGETS["B1_k8s"])))
        rows.append(("B1 no-op: at most 1.0x the kubernetes.core playbook (issue 16)", f"{r2:.2f}x",
                     _verdict(r2 <= TARGETS["B1_k8s_16"])))
        rows.append(("B1 no-op: zero new revisions", f"{', '.join(map(str, revs))} per run",
                     _verdict(revs == [0])))
    if "B2" in ph:
        s = ph["B2"]["summary"]
        r = ratio(s["collection"], s["shell"])
        rows.append(("B2 first install: at most 1.3x the shell script", f"{r:.2f}x",
                     _verdict(r <= TARGETS["B2_shell"])))
        r = ratio(s["collection"], s["kubernetes.core"])
        rows.append(("B2 first install: at most 1.2x the kubernetes.core playbook (issue 16)", f"{r:.2f}x",
                     _verdict(r <= TARGETS["B2_k8s_16"])))
    if "B3" in ph:
        s = ph["B3"]["summary"]
        r = ratio(s["coder_pg_facts"]["task_seconds"], s["community.postgresql"]["task_seconds"])
        rw = ratio(s["coder_pg_facts"]["seconds"], s["community.postgresql"]["seconds"])
        conns = s["coder_pg_facts"]["authorised"]
        rows.append(("B3 facts: at most 0.5x community.postgresql (the facts tasks)", f"{r:.2f}x",
                     _verdict(r <= TARGETS["B3_ratio"])))
        rows.append(("B3 facts: (the same, whole playbook run, for reference)", f"{rw:.2f}x",
                     _verdict(rw <= TARGETS["B3_ratio"])))
        rows.append(("B3 facts: exactly one connection", f"{conns['min']:.0f}-{conns['max']:.0f} per run",
                     _verdict(conns["min"] == conns["max"] == 1)))
    if "B4" in ph:
        s = ph["B4"]["summary"]
        for h in ("helm3", "helm4"):
            r = ratio(s[f"collection/{h}"]["recovered_s"], s[f"helm/{h}"]["recovered_s"])
            if r is not None:
                verdict = ("n/a: QUICK shortens the timeout to 45 s" if results["quick"]
                           else _verdict(r <= TARGETS["B4_ratio"]))
                rows.append((f"B4 recovery ({h}): at most 0.25x helm's own", f"{r:.2f}x", verdict))
    if "B5" in ph and "50" in ph["B5"]["summary"]:
        s = ph["B5"]["summary"]
        r = ratio(s["50"]["per_release"], s["10"]["per_release"])
        rows.append(("B5: time per release at 50 at most 1.2x that at 10", f"{r:.2f}x",
                     _verdict(r <= TARGETS["B5_scaling"])))
    if "B6" in ph:
        s = ph["B6"]["summary"]
        for h in ("helm3", "helm4"):
            coll, own = s.get(f"collection/{h}"), s.get(f"helm/{h}")
            if coll and own:
                rows.append((f"B6 failed upgrade that migrated ({h}): the collection ends healthy, also after its"
                             " pods restart", f"{_ends_healthy(coll)}/{coll['runs']} runs (helm's own:"
                             f" {_ends_healthy(own)}/{own['runs']})",
                             _verdict(_ends_healthy(coll) == coll["runs"])))
    if "total_s" in results:
        limit = TARGETS["quick_min"] if results["quick"] else TARGETS["total_min"]
        what = "make bench QUICK=1" if results["quick"] else "make bench"
        minutes = results["total_s"] / 60
        rows.append((f"{what} within {limit} minutes", f"{minutes:.1f} min", _verdict(minutes <= limit)))
    return rows


def _ends_healthy(x):
    """Runs that were healthy again by the cap and again after their pods restarted."""
    return min(x["healthy_runs"], x["restart_ok"])


def _never(x, key, runs_key):
    """'12.3 (10.1-14.0)', with how many runs never got there."""
    never = x["runs"] - x[runs_key]
    if not x[key]:
        return "never"
    return fmt_s(x[key]) + (f"; never in {never} of {x['runs']}" if never else "")


def _load(x):
    return " / ".join(f"{v:.2f}" for v in x) if x else "-"


def markdown(results, png_name):
    m = results["machine"]
    ph = results["phases"]
    out = []
    date = results["started"][:10]
    out.append(f"# make bench, {date}{' (QUICK: a smoke run, not results)' if results['quick'] else ''}\n")
    out.append(f"Run `{results['run_id']}`, {results['started']} to {results.get('finished', '?')}, "
               f"{results.get('total_s', 0) / 60:.1f} min in all; {results['reps']} repetition(s) per measurement, "
               f"contenders interleaved (the order rotates every repetition); medians, with min-max in brackets; "
               f"seconds of wall time.\n")
    quiet = results.get("quiet")
    out.append(f"Load average (1/5/15 min) at the start {_load(results.get('load_start'))}, at the end "
               f"{_load(results.get('load_end'))}: "
               + ("the machine was quiet (1-minute load at most 1.0) when the run started."
                  if quiet else "**the machine was not quiet**: other jobs were running (the run waited for a "
                                "1-minute load average at most 1.0, then ran anyway); the numbers are noisier "
                                "than on an idle machine.") + "\n")
    out.append("## Machine and versions\n")
    out.append("| what | value |\n|---|---|")
    for k, label in (("cpu", "CPU"), ("cores", "cores"), ("memory_gib", "memory (GiB)"), ("kernel", "kernel"),
                     ("python", "Python"), ("ansible_core", "ansible-core"), ("kubernetes_core", "kubernetes.core"),
                     ("community_postgresql", "community.postgresql"), ("helm3", "helm 3"), ("helm4", "helm 4"),
                     ("kubectl", "kubectl"), ("kubernetes", "Kubernetes (kwok test bed)"),
                     ("postgresql_main", "PostgreSQL (test bed `main`)")):
        out.append(f"| {label} | {m.get(k, '?')} |")
    if "bench_server" in results:
        out.append(f"| PostgreSQL (the benchmark's own server, B3 and B5) | {results['bench_server']['version']} |")
    dirty = " plus uncommitted work in plugins/, roles/ or playbooks/" if m.get("git_dirty") else ""
    out.append(f"| collection | commit {m.get('git_commit')}{dirty} |\n")

    out.append("## Targets (issues 8 and 16)\n")
    out.append("| target | measured | verdict |\n|---|---|---|")
    for t, v, verdict in targets(results):
        out.append(f"| {t} | {v} | {verdict} |")
    out.append("")

    if "B1" in ph:
        d = ph["B1"]
        s = d["summary"]
        out.append("## B1: no-op re-run (nothing changed)\n")
        out.append("Each contender re-runs against its own release, installed by itself beforehand and re-run once "
                   "unmeasured. helm 3.\n")
        out.append("| contender | wall time s | collection / this | new helm revisions per run |\n|---|---|---|---|")
        for c in ("collection", "shell", "kubernetes.core"):
            r = ratio(s["collection"], s[c])
            out.append(f"| {_name(c)} | {fmt_s(s[c], 2)} | {r:.2f}x | {', '.join(map(str, d['new_revisions'][c]))} |")
        out.append(_phase_load("B1", d))
    if "B2" in ph:
        d = ph["B2"]
        s = d["summary"]
        out.append("## B2: first install, a fresh namespace each time\n")
        out.append("| contender | wall time s | collection / this |\n|---|---|---|")
        for c in ("collection", "shell", "kubernetes.core"):
            r = ratio(s["collection"], s[c])
            out.append(f"| {_name(c)} | {fmt_s(s[c], 2)} | {r:.2f}x |")
        out.append(_phase_load("B2", d))
    if "B3" in ph:
        d = ph["B3"]
        s = d["summary"]
        out.append("## B3: PostgreSQL facts\n")
        out.append(f"Against the benchmark's own PostgreSQL {d['server_version']} server (TLS, verify-full, "
                   "scram-sha-256, `log_connections` and `log_statement = all`): connections and statements are "
                   "counted from its log. The facts tasks' time comes from ansible's json callback; the playbook "
                   "time includes ansible's start-up.\n")
        out.append("| contender | facts tasks s | whole playbook s | connections opened | statements sent |\n"
                   "|---|---|---|---|---|")
        for c in ("coder_pg_facts", "community.postgresql"):
            x = s[c]
            out.append(f"| {c} | {fmt_s(x['task_seconds'], 2)} | {fmt_s(x['seconds'], 2)} | "
                       f"{fmt_s(x['authorised'], 0)} | {fmt_s(x['statements'], 0)} |")
        out.append(_phase_load("B3", d))
    if "B4" in ph:
        d = ph["B4"]
        s = d["summary"]
        out.append("## B4: time to recover from an upgrade whose pods crash loop\n")
        out.append(f"timeout {d['timeout']} s. Seconds from the start of the run until the last good revision is "
                   "deployed again (a watch on the release's storage Secrets sees the rollback revision become "
                   "`deployed`), and until the process ended.\n")
        out.append("| contender | helm | runs | recovered after s | process ended after s | collection / helm's own |\n"
                   "|---|---|---|---|---|---|")
        for h in ("helm3", "helm4"):
            for c in ("collection", "helm"):
                x = s[f"{c}/{h}"]
                r = ratio(s[f"collection/{h}"]["recovered_s"], s[f"helm/{h}"]["recovered_s"])
                label = "collection (fail fast, rollback)" if c == "collection" else (
                    "helm upgrade --atomic" if h == "helm3" else "helm upgrade --rollback-on-failure")
                n = x["recovered_s"]["n"] if x["recovered_s"] else 0
                out.append(f"| {label} | {h} | {n} | {fmt_s(x['recovered_s'])} | {fmt_s(x['exit_s'])} | "
                           f"{(f'{r:.2f}x' if c == 'collection' and r else '')} |")
        out.append(_phase_load("B4", d))
    if "B5" in ph:
        d = ph["B5"]
        s = d["summary"]
        out.append(f"## B5: scale, N releases in N namespaces in one run (forks {d['forks']})\n")
        out.append("First installs, helm 3, all releases against the benchmark's own PostgreSQL server. Peak "
                   "connections of role `coder` open at once: exact, from the server's connection and disconnection "
                   "log lines, and as sampled every 0.25 s from `pg_stat_activity` (a connection that lives a few "
                   "milliseconds slips between samples). Peak helm processes: sampled every 0.25 s from /proc, only "
                   "those started by the run.\n")
        out.append("| releases | total s | per release s | peak PostgreSQL connections (log) | (sampled) | "
                   "connections in all | peak helm processes |\n|---|---|---|---|---|---|---|")
        for size, x in s.items():
            out.append(f"| {size} | {fmt_s(x['seconds'])} | {fmt_s(x['per_release'], 2)} | "
                       f"{fmt_s(x['peak_pg_log'], 0)} | {fmt_s(x['peak_pg'], 0)} | {fmt_s(x['connections'], 0)} | "
                       f"{fmt_s(x['peak_helm'], 0)} |")
        out.append(_phase_load("B5", d))
    if "B6" in ph:
        d = ph["B6"]
        s = d["summary"]
        out.append("## B6: an upgrade that migrated the database, then failed: until Coder is healthy again\n")
        out.append(f"Real pods on the test bed's real node, each run in a namespace and database of its own with "
                   f"Coder {d['from']} installed first (not timed); the upgrade to {d['to']} migrates the database "
                   f"(schema 4 -> 5) and its pods exit (`STANDIN_FAIL=after-migrate`). helm's timeout {d['timeout']} s "
                   f"(both contenders); {d['reps']} repetition(s). Healthy: what the collection's health gate asks "
                   f"through the API server's service proxy, `/healthz` answers and `/api/v2/buildinfo` says "
                   f"v{d['from']}, asked every second. *Healthy again after*: seconds from the start of the upgrade "
                   f"until the run is over and Coder is healthy (and stays so for {d['settle']} s); not by "
                   f"{d['cap']} s is *never*. *Down*: seconds the check failed meanwhile. Then Coder's pods are "
                   f"deleted (as a node drain or a crash would) and asked again for up to {d['restart_cap']} s.\n")
        out.append("| contender | helm | runs | healthy again after s | down during the run s | exit status | "
                   "process ended after s | newest helm revision | schema version at the end | "
                   "healthy after its pods restart |\n|---|---|---|---|---|---|---|---|---|---|")
        for h in ("helm3", "helm4"):
            for c in ("collection", "helm"):
                x = s.get(f"{c}/{h}")
                if not x:
                    continue
                label = "collection (backup, restore, rollback)" if c == "collection" else (
                    "helm upgrade --atomic" if h == "helm3" else "helm upgrade --rollback-on-failure")
                restarted = (f"{x['restart_ok']} of {x['runs']}"
                             + (f" ({fmt_s(x['restart_s'])} s)" if x["restart_s"] else ""))
                out.append(f"| {label} | {h} | {x['runs']} | {_never(x, 'healthy_s', 'healthy_runs')} | "
                           f"{fmt_s(x['down_s'])} | {', '.join(map(str, x['rc']))} | {fmt_s(x['exit_s'])} | "
                           f"{', '.join(x['final'])} | {', '.join(map(str, x['schema']))} | {restarted} |")
        out.append(_phase_load("B6", d))
    if "profile" in ph:
        p = ph["profile"]
        out.append("## Where the collection's time goes (one profiled run each, not part of the measurements)\n")
        out.append("`ansible.posix.profile_tasks`, helm 3; the slowest tasks, and the helm and kubectl commands "
                   "the run started.\n")
        for key, title in (("noop", "no-op re-run"), ("install", "first install")):
            x = p[key]
            out.append(f"**{title}**: {x['seconds']:.1f} s, {len(x['tasks'])} tasks, "
                       f"{sum(t for _, t in x['tasks']):.1f} s in tasks; commands: "
                       f"{_count_commands(x['commands'])}\n")
            out.append("| task | s |\n|---|---|")
            for name, sec in x["tasks"][:12]:
                out.append(f"| {name} | {sec:.2f} |")
            out.append("")
    out.append(f"![{', '.join(k for k in ('B1', 'B4', 'B5', 'B6') if k in ph) or 'make bench'}]({png_name})\n")
    return "\n".join(out)


def _phase_load(key, d):
    return f"\nLoad average during {key}: {_load(d['load_start'])} at the start, {_load(d['load_end'])} at the end.\n"


def _count_commands(commands):
    counts = {}
    for c in commands:
        counts[c] = counts.get(c, 0) + 1
    return ", ".join(f"`{c}` x{n}" if n > 1 else f"`{c}`" for c, n in counts.items()) or "none"


def _name(c):
    return {"collection": "deploy_coder.yml (this collection)", "shell": "shell script (the guide by hand)",
            "kubernetes.core": "kubernetes.core playbook"}.get(c, c)


def chart(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ph = results["phases"]
    panels = [k for k in ("B1", "B4", "B5", "B6") if k in ph]
    fig, axes = plt.subplots(1, max(1, len(panels)), figsize=(5.2 * max(1, len(panels)), 4.6))
    axes = list(axes) if len(panels) > 1 else [axes]

    def bars(ax, labels, stats, colors):
        med = [s["median"] if s else 0 for s in stats]
        lo = [s["median"] - s["min"] if s else 0 for s in stats]
        hi = [s["max"] - s["median"] if s else 0 for s in stats]
        xs = range(len(labels))
        ax.bar(xs, med, yerr=[lo, hi], capsize=4, color=colors)
        ax.set_xticks(list(xs), labels, fontsize=8)
        for x, v, top in zip(xs, med, [m + h for m, h in zip(med, hi, strict=True)], strict=True):
            ax.annotate(f"{v:.1f}", (x, top), ha="center", va="bottom", fontsize=8,
                        xytext=(0, 3), textcoords="offset points")

    for ax, key in zip(axes, panels, strict=False):
        if key == "B1":
            s1 = ph["B1"]["summary"]
            labels, stats = ["collection", "shell", "kubernetes.core"], []
            stats = [s1[c] for c in labels]
            bars(ax, ["deploy_coder.yml", "shell script", "kubernetes.core"], stats, ["#2a7", "#888", "#58b"])
            ax.set_title("B1 no-op re-run (median, min-max)")
            ax.set_ylabel("seconds")
        elif key == "B4":
            s4 = ph["B4"]["summary"]
            keys = ["collection/helm3", "helm/helm3", "collection/helm4", "helm/helm4"]
            labels = ["collection\nhelm 3", "--atomic\nhelm 3", "collection\nhelm 4", "--rollback-\non-failure\nhelm 4"]
            bars(ax, labels, [s4[k]["recovered_s"] for k in keys], ["#2a7", "#c55", "#2a7", "#c55"])
            ax.set_title(f"B4 time to recover (timeout {ph['B4']['timeout']} s)")
            ax.set_ylabel("seconds until the last good revision is back")
        elif key == "B5":
            s5 = ph["B5"]["summary"]
            sizes = [int(k) for k in s5]
            per = [s5[str(k)]["per_release"]["median"] for k in sizes]
            tot = [s5[str(k)]["seconds"]["median"] for k in sizes]
            ax.plot(sizes, per, "o-", color="#2a7", label="per release (median)")
            ax.set_xscale("log")
            ax.set_xticks(sizes, [str(k) for k in sizes])
            ax.minorticks_off()
            ax.set_xlabel("releases in one run (forks 10)")
            ax.set_ylabel("seconds per release")
            ax.set_ylim(bottom=0)
            ax2 = ax.twinx()
            ax2.plot(sizes, tot, "s--", color="#58b", label="total (median)")
            ax2.set_ylabel("seconds in all")
            ax2.set_ylim(bottom=0)
            ax.set_title("B5 scale")
            lines = ax.get_lines() + ax2.get_lines()
            ax.legend(lines, [ln.get_label() for ln in lines], fontsize=8, loc="upper center")
        elif key == "B6":
            s6 = ph["B6"]["summary"]
            keys = [k for k in ("collection/helm3", "helm/helm3", "collection/helm4", "helm/helm4") if k in s6]
            labels = {"collection/helm3": "collection\nhelm 3", "helm/helm3": "--atomic\nhelm 3",
                      "collection/helm4": "collection\nhelm 4", "helm/helm4": "--rollback-\non-failure\nhelm 4"}
            bars(ax, [labels[k] for k in keys], [s6[k]["healthy_s"] for k in keys],
                 ["#2a7" if k.startswith("collection") else "#c55" for k in keys])
            for x, k in enumerate(keys):
                ok = _ends_healthy(s6[k])
                ax.annotate(f"ends healthy\n{ok}/{s6[k]['runs']}", (x, 0), ha="center", va="bottom", fontsize=7,
                            xytext=(0, 4), textcoords="offset points", color="white" if s6[k]["healthy_s"] else "#c55")
            ax.set_title(f"B6 failed upgrade that migrated (cap {ph['B6']['cap']} s)")
            ax.set_ylabel("seconds until healthy again")
    fig.suptitle(f"coderops.deploy make bench {results['started'][:10]}"
                 f"{' (QUICK smoke run)' if results['quick'] else ''}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results, directory, date):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    png = directory / f"{date}.png"
    chart(results, png)
    md = directory / f"{date}.md"
    md.write_text(markdown(results, png.name) + "\n")
    return md, png


def update_docs(doc, md, png):
    """Put the latest results (their tables and chart) between the markers of docs/performance.md."""
    doc = Path(doc)
    text = doc.read_text() if doc.exists() else f"# Performance\n\n{DOC_BEGIN}\n{DOC_END}\n"
    body = Path(md).read_text()
    body = body.replace(f"]({Path(png).name})", f"](../bench/results/{Path(png).name})")
    body = re.sub(r"^# (.*)$", r"## Latest results: \1", body, count=1, flags=re.M)
    body = re.sub(r"^## (?!Latest)", "### ", body, flags=re.M)
    body += f"\nThe full results file: [bench/results/{Path(md).name}](../bench/results/{Path(md).name}).\n"
    if DOC_BEGIN not in text:
        text = text.rstrip() + f"\n\n{DOC_BEGIN}\n{DOC_END}\n"
    head, rest = text.split(DOC_BEGIN, 1)
    tail = rest.split(DOC_END, 1)[1] if DOC_END in rest else ""
    doc.write_text(f"{head}{DOC_BEGIN}\n{body}\n{DOC_END}{tail}")
