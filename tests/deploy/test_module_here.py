"""A module run in the task's worker (plugins/plugin_utils/_module_here.py) returns what the same
module returns as AnsiballZ in a new interpreter: results, check mode, diff, refusals and failures,
and the password (no_log) in no output nor result.

The same playbook runs twice against the main PostgreSQL server: once with the controller's own
Python as ansible_python_interpreter (the worker runs the modules), once with the same virtualenv's
Python named by another path (AnsiballZ, as on any target). Real PostgreSQL, no cluster needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from helpers import ENV, REPO, VENV_BIN, run

MAIN = {k: ENV[f"CODER_TEST_PG_MAIN_{k}"] for k in ("HOST", "PORT", "USER", "DATABASE", "SSLROOTCERT")}

PLAYBOOK = """
- name: The same module calls, in the worker or as AnsiballZ
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    pw: "{{ lookup('ansible.builtin.file', pw_file, rstrip=false) }}"
    login: &login
      login_host: "{{ pg_host }}"
      login_port: "{{ pg_port }}"
      login_user: "{{ pg_user }}"
      login_db: "{{ pg_db }}"
      login_password: "{{ pw }}"
      ssl_mode: verify-full
      ca_cert: "{{ pg_ca }}"
  tasks:
    - name: Facts
      coderops.deploy.coder_pg_facts: *login
      register: facts

    - name: Values in check mode, with a diff
      coderops.deploy.coder_values: &values
        pg_facts: "{{ facts }}"
        host: "{{ pg_host }}"
        port: "{{ pg_port | int }}"
        user: "{{ pg_user }}"
        database: "{{ pg_db }}"
        password_secret: coder-db-password
        ssl_mode: verify-full
        ssl_root_cert_secret: {name: coder-db-ca, key: ca.crt}
        replicas: 2
        dest: "{{ out_dir }}/values.yaml"
      check_mode: true
      diff: true
      register: checked

    - name: Values written
      coderops.deploy.coder_values: *values
      register: written

    - name: Values again
      coderops.deploy.coder_values: *values
      register: again

    - name: A refused option
      coderops.deploy.coder_pg_facts:
        <<: *login
        connect_timeout: soon
      register: refused
      ignore_errors: true

    - name: A failure of the module itself
      coderops.deploy.coder_values:
        host: db
        port: 5432
        user: coder
        database: coder
        password_secret: coder-db-password
        chart_generation: v2
        url_secret: ""
      register: failed
      ignore_errors: true

    - name: Keep the results
      ansible.builtin.copy:
        content: "{{ {'facts': facts, 'checked': checked, 'written': written, 'again': again,
                      'refused': refused, 'failed': failed} | to_json }}"
        dest: "{{ out_dir }}/results.json"
        mode: "0600"
"""


def _run(tmp_path, name, interpreter):
    out = tmp_path / name
    out.mkdir()
    book = tmp_path / "book.yml"
    book.write_text(PLAYBOOK)
    extra = {"out_dir": str(out), "pw_file": ENV["CODER_TEST_PG_PASSWORD_FILE"], "pg_host": MAIN["HOST"],
             "pg_port": MAIN["PORT"], "pg_user": MAIN["USER"], "pg_db": MAIN["DATABASE"],
             "pg_ca": MAIN["SSLROOTCERT"], "ansible_python_interpreter": interpreter}
    res = run(VENV_BIN / "ansible-playbook", "-i", "localhost,", "-vvvv", book, "-e", json.dumps(extra), check=False,
              env=dict(ENV, ANSIBLE_COLLECTIONS_PATH=str(REPO / "playbooks" / "collections")))
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    return res.stdout, results, (out / "values.yaml").read_text()


def _comparable(result):
    """A result without what differs between any two runs (timings, paths of this run)."""
    text = json.dumps(result, sort_keys=True)
    return json.loads(text.replace("/here/", "/x/").replace("/ansiballz/", "/x/"))


def test_a_module_in_the_worker_returns_what_ansiballz_returns(tmp_path):
    here_out, here, here_values = _run(tmp_path, "here", "{{ ansible_playbook_python }}")
    zipped_out, zipped, zipped_values = _run(tmp_path, "ansiballz", str(VENV_BIN / "python"))
    # Each way really ran as it says.
    assert "coderops.deploy.coder_values: runs in this worker process" in here_out
    assert "runs in this worker process" not in zipped_out and "AnsiballZ_coder_values.py" in zipped_out

    assert here_values == zipped_values
    for key in ("checked", "written", "again", "refused", "failed"):
        assert _comparable(here[key]) == _comparable(zipped[key]), key
    # coder_pg_facts: the same facts (latency differs run to run); the password in no output at
    # -vvvv nor in any registered result.
    password = Path(ENV["CODER_TEST_PG_PASSWORD_FILE"]).read_text()
    for text in (here_out, zipped_out, json.dumps(here), json.dumps(zipped)):
        assert password not in text
    assert {k: v for k, v in here["facts"].items() if "latency" not in k} == \
        {k: v for k, v in zipped["facts"].items() if "latency" not in k}
    assert here["checked"]["changed"] is True and "diff" in here["checked"]
    assert here["written"]["changed"] is True and here["again"]["changed"] is False
    assert here["refused"]["failed"] is True and "connect_timeout" in here["refused"]["msg"]
    assert here["failed"]["failed"] is True and here["failed"]["msg"]
