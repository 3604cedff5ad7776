# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Connection options, keyword arguments, RDS IAM tokens (mocked boto3), failure mapping."""

from __future__ import annotations

import importlib
import os
import sys
from unittest import mock

import pytest
import yaml
from ansible_collections.coderops.deploy.plugins.module_utils import _pg_connection as pgc
from ansible_collections.coderops.deploy.plugins.module_utils._budget import budget_argument_spec

CANARY = "p w'\"=@%\\:é€ host=evil"


def params(**update):
    p = {k: v.get("default") for k, v in pgc.pg_connection_argument_spec().items()}
    p.update(login_host="127.0.0.1", login_port=5432, login_user="coder", login_db="coder",
             login_password=CANARY)
    p.update(update)
    return p


def _fragment(name):
    mod = importlib.import_module(f"ansible_collections.coderops.deploy.plugins.doc_fragments.{name}")
    return yaml.safe_load(mod.ModuleDocFragment.DOCUMENTATION)


@pytest.mark.parametrize("fragment,spec", [
    ("_pg_connection", pgc.pg_connection_argument_spec),
    ("_budget", budget_argument_spec),
])
def test_doc_fragment_matches_spec(fragment, spec):
    """The doc fragment and the argument spec function document the same options."""
    docs = _fragment(fragment)["options"]
    spec = spec()
    assert set(docs) == set(spec)
    for name, opt in spec.items():
        assert docs[name].get("type", "str") == opt.get("type", "str"), name
        assert docs[name].get("default") == opt.get("default"), name
        assert docs[name].get("choices") == opt.get("choices"), name


def test_env_vars_documented_and_wired():
    docs = _fragment("_pg_connection")
    notes = " ".join(docs["notes"])
    spec = pgc.pg_connection_argument_spec()
    for option, env in pgc.ENV_VARS.items():
        assert f"E({env})" in notes
        assert f"E({env})" in " ".join(docs["options"][option]["description"])
        assert spec[option]["fallback"][1] == [env]
    assert spec["login_password"]["no_log"] is True


def test_spec_is_a_fresh_deep_copy():
    a = pgc.pg_connection_argument_spec()
    a["login_host"]["fallback"][1].append("X")
    a["ssl_mode"]["choices"].append("bogus")
    b = pgc.pg_connection_argument_spec()
    assert b["login_host"]["fallback"][1] == ["CODER_PG_HOST"]
    assert "bogus" not in b["ssl_mode"]["choices"]


def test_env_fallback_reads_coder_pg_variables():
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

    env = {"CODER_PG_HOST": "db.env", "CODER_PG_PORT": "6543", "CODER_PG_USER": "u",
           "CODER_PG_PASSWORD": CANARY, "CODER_PG_DATABASE": "d", "CODER_PG_SSLMODE": "verify-full",
           "CODER_PG_SSLROOTCERT": "/ca", "CODER_PG_SSLCERT": "/c", "CODER_PG_SSLKEY": "/k"}
    with mock.patch.dict(os.environ, env):
        result = ArgumentSpecValidator(pgc.pg_connection_argument_spec()).validate({})
    p = result.validated_parameters
    assert (p["login_host"], p["login_port"], p["login_user"], p["login_password"], p["login_db"],
            p["ssl_mode"], p["ca_cert"], p["ssl_cert"], p["ssl_key"]) == (
        "db.env", 6543, "u", CANARY, "d", "verify-full", "/ca", "/c", "/k")
    assert CANARY in result._no_log_values


def test_connect_kwargs_are_keywords_never_a_dsn():
    kw = pgc.connect_kwargs(params(ca_cert="/ca", ssl_cert="/c", ssl_key="/k"), CANARY)
    assert kw == {"connect_timeout": 10, "sslmode": "require",
                  "application_name": "coderops.deploy.coder_pg_facts", "tcp_user_timeout": 10000,
                  "host": "127.0.0.1", "port": 5432, "user": "coder", "dbname": "coder",
                  "sslrootcert": "/ca", "sslcert": "/c", "sslkey": "/k", "password": CANARY}
    assert "dsn" not in kw


def test_unset_options_are_left_to_libpq():
    kw = pgc.connect_kwargs(params(login_host=None, login_port=None, login_user=None,
                                   login_db=None), None)
    assert not {"host", "port", "user", "dbname", "password"} & set(kw)


@pytest.mark.parametrize("update,fragment", [
    ({"connect_timeout": 0}, "connect_timeout must be between 1 and 600"),
    ({"connect_timeout": 601}, "connect_timeout must be between 1 and 600"),
    ({"login_port": 70000}, "login_port 70000 is out of range"),
    ({"login_host": " "}, "login_host is empty"),
    ({"ssl_cert": "/c"}, "ssl_cert is set but ssl_key is not"),
    ({"ssl_key": "/k"}, "ssl_key is set but ssl_cert is not"),
    ({"connector": "awsiamrds"}, "login_password is set, but connector awsiamrds"),
    ({"connector": "awsiamrds", "login_password": None, "login_host": None},
     "connector awsiamrds needs login_host"),
    ({"connector": "awsiamrds", "login_password": None, "ssl_mode": "disable"},
     "connector awsiamrds needs TLS"),
])
def test_invalid_options(update, fragment):
    with pytest.raises(pgc.ConnectionFailure) as err:
        pgc.check_connection_params(params(**update))
    assert err.value.reason == "invalid_options"
    assert fragment in err.value.message
    assert CANARY not in err.value.message


def mocked_boto3(client):
    """A mocked boto3 whose rds client is `client` (botocore's real exception classes), and the
    patch that makes rds_auth_token import it."""
    import botocore.exceptions

    boto3 = mock.Mock()
    boto3.client.return_value = client
    return boto3, mock.patch.object(pgc, "_load_boto3", return_value=(boto3, botocore.exceptions))


def test_rds_token_from_mocked_boto3():
    client = mock.Mock()
    client.generate_db_auth_token.return_value = "TOKEN-" + CANARY
    boto3, patched = mocked_boto3(client)
    with patched:
        token = pgc.rds_auth_token(params(connector="awsiamrds", login_password=None,
                                          aws_region="eu-west-1", login_port=None))
    boto3.client.assert_called_once_with("rds", region_name="eu-west-1")
    client.generate_db_auth_token.assert_called_once_with(
        DBHostname="127.0.0.1", Port=5432, DBUsername="coder", Region="eu-west-1")
    assert token == "TOKEN-" + CANARY


def test_rds_token_is_the_password_and_never_in_failures():
    token = "rds-token-" + CANARY
    p = params(connector="awsiamrds", login_password=None, aws_region="eu-west-1")
    client = mock.Mock()
    client.generate_db_auth_token.return_value = token
    err = pgc.psycopg2.OperationalError(
        f'connection to server failed: FATAL:  PAM authentication failed for user "coder" {token}')
    with mocked_boto3(client)[1], mock.patch.object(pgc.psycopg2, "connect", side_effect=err) as connect:
        tok = pgc.rds_auth_token(p)
        with pytest.raises(pgc.ConnectionFailure) as failure:
            pgc.open_connection(p, tok)
    assert connect.call_args.kwargs["password"] == token
    assert failure.value.reason == "auth_failed"
    assert token not in failure.value.message and CANARY not in failure.value.message


@pytest.mark.parametrize("exc_name,reason,fragment", [
    ("NoRegionError", "invalid_options", "set aws_region"),
    ("NoCredentialsError", "auth_failed", "found no AWS credentials"),
])
def test_rds_token_errors(exc_name, reason, fragment):
    import botocore.exceptions

    client = mock.Mock()
    client.generate_db_auth_token.side_effect = getattr(botocore.exceptions, exc_name)()
    with mocked_boto3(client)[1]:
        with pytest.raises(pgc.ConnectionFailure) as err:
            pgc.rds_auth_token(params(connector="awsiamrds", login_password=None))
    assert err.value.reason == reason and fragment in err.value.message


def test_rds_without_boto3():
    with mock.patch.dict(sys.modules, {"boto3": None}):  # `import boto3` raises ImportError
        with pytest.raises(pgc.ConnectionFailure) as err:
            pgc.rds_auth_token(params(connector="awsiamrds", login_password=None))
    assert "boto3" in err.value.message


def test_failure_is_scrubbed_and_explained():
    err = pgc.psycopg2.OperationalError(
        'connection to server at "127.0.0.1", port 1 failed: Connection refused ' + CANARY)
    with mock.patch.object(pgc.psycopg2, "connect", side_effect=err) as connect:
        with pytest.raises(pgc.ConnectionFailure) as failure:
            pgc.open_connection(params(login_port=1))
    assert connect.call_count == 1
    assert "dsn" not in connect.call_args.kwargs and not connect.call_args.args
    assert failure.value.reason == "refused"
    assert "nothing accepts connections on 127.0.0.1 port 1" in failure.value.message
    assert CANARY not in failure.value.message


def test_connection_is_read_only():
    conn = mock.Mock()
    with mock.patch.object(pgc.psycopg2, "connect", return_value=conn):
        assert pgc.open_connection(params()) is conn
    conn.set_session.assert_called_once_with(readonly=True, autocommit=False)
