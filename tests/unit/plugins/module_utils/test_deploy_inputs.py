# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""_deploy_inputs: the roles' input rules, keyed by playbook variable. The playbook runs that show
these messages are the deploy suite's (tests/deploy/test_bad_input.py)."""

from __future__ import annotations

import pytest
from ansible_collections.coderops.deploy.plugins.module_utils._deploy_inputs import problems

GOOD = {"password_given": True, "password_padded": False, "coder_db_connector": "postgres",
        "coder_db_host": "db.example.internal", "coder_db_port": "5432", "coder_db_ssl_mode": "verify-full",
        "coder_db_ssl_ca_file": "/ca.crt", "coder_db_ssl_cert_file": "", "coder_db_ssl_key_file": "",
        "coder_release_name": "coder", "coder_helm_timeout": 300, "helm_release_rollback_timeout": 300,
        "helm_release_progress_interval": 15, "helm_release_fail_fast_grace": 20, "helm_release_lock_ttl": 60}


def test_good_input_has_no_problem():
    assert problems(GOOD) == []
    assert problems({}) == []  # only the keys given are checked
    # None: a variable the check does not know where it runs (helm_release's, for the preflight alone).
    assert problems({"helm_release_lock_ttl": None, "helm_release_rollback_timeout": None}) == []


@pytest.mark.parametrize("change,words", [
    ({"password_padded": True}, "coder_db_password has leading or trailing white space"),
    ({"coder_db_connector": "awsiamrds"}, "remove coder_db_password"),
    ({"password_given": False}, "coder_db_password is not set"),
    ({"coder_db_host": "  "}, "coder_db_host is empty"),
    ({"coder_db_host": None}, "coder_db_host is empty"),
    ({"coder_db_port": "fivefourthreetwo"}, 'got "fivefourthreetwo"'),
    ({"coder_db_port": 70000}, "coder_db_port must be a number between 1 and 65535"),
    ({"coder_db_port": 0}, "coder_db_port must be a number between 1 and 65535"),
    ({"coder_db_ssl_cert_file": "/c.crt"}, "coder_db_ssl_cert_file is set but coder_db_ssl_key_file is not"),
    ({"coder_db_ssl_key_file": "/c.key"}, "coder_db_ssl_key_file is set but coder_db_ssl_cert_file is not"),
    ({"coder_db_ssl_ca_file": ""}, "coder_db_ssl_mode verify-full verifies the server's certificate"),
    ({"coder_release_name": "Coder"}, 'coder_release_name "Coder" is not a valid Helm release name'),
    ({"coder_release_name": "c" * 54}, "at most 53 characters"),
    ({"coder_helm_timeout": 5}, "coder_helm_timeout must be between 10 and 86400; got 5."),
    ({"helm_release_progress_interval": 31}, "helm_release_progress_interval must be between 1 and 30"),
    ({"helm_release_lock_ttl": "soon"}, "helm_release_lock_ttl must be between 15 and 3600; got soon."),
])
def test_each_rule_names_its_variable(change, words):
    found = problems({**GOOD, **change})
    assert len(found) == 1 and words in found[0], found


def test_a_client_certificate_stands_in_for_the_password():
    assert problems({**GOOD, "password_given": False, "coder_db_ssl_cert_file": "/c.crt",
                     "coder_db_ssl_key_file": "/c.key"}) == []


def test_every_problem_at_once():
    assert len(problems({**GOOD, "coder_db_host": "", "coder_helm_timeout": 1, "coder_release_name": "_"})) == 3
