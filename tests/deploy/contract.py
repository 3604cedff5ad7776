# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The Coder v1 chart contract, checked on the live Deployment (not on the values)."""

from __future__ import annotations

from helpers import env_of

CHART_DB_ENV = ("DB_HOST", "DB_PORT", "DB_USER", "DB_NAME", "DB_CONNECTOR", "DB_SSL_MODE")


def check_deployment(template, *, host, port, user, database, ssl_mode, connector="postgres",
                     password_secret=None, no_password_env=False, cert=None, key=None, root_cert=None,
                     max_db_connections=30, search_path=None):
    """Assert env, volumes and mounts of both containers against the contract."""
    spec = template["spec"]
    inits = {c["name"]: c for c in spec.get("initContainers", [])}
    containers = {c["name"]: c for c in spec["containers"]}
    assert set(inits) == {"migrations"}, inits.keys()
    assert "coderd" in containers
    volumes = {v["name"]: v for v in spec.get("volumes", [])}

    expected = {"DB_HOST": host, "DB_PORT": str(port), "DB_USER": user, "DB_NAME": database,
                "DB_CONNECTOR": connector, "DB_SSL_MODE": ssl_mode}
    if search_path:
        expected["DB_SEARCH_PATH"] = search_path
    if password_secret and no_password_env:
        expected["DB_PASSWORD_PATH"] = f"/run/secrets/{password_secret}/password"
    if cert:
        expected["DB_CERT"] = f"/etc/ssl/certs/pg/cert/{cert['key']}"
    if key:
        expected["DB_KEY"] = f"/etc/ssl/certs/pg/key/{key['key']}"
    if root_cert:
        expected["DB_ROOT_CERT"] = f"/etc/ssl/certs/pg/rootcert/{root_cert['key']}"

    for cname, container in (("migrations", inits["migrations"]), ("coderd", containers["coderd"])):
        env = env_of(container)
        names = [e["name"] for e in container["env"]]
        for name, value in expected.items():
            assert name in env, f"{cname}: {name} missing ({names})"
            assert env[name].get("value") == value, f"{cname}: {name}={env[name]} != {value!r}"
        if password_secret and not no_password_env:
            assert env["DB_PASSWORD"]["valueFrom"] == {
                "secretKeyRef": {"name": password_secret, "key": "password"}}, env["DB_PASSWORD"]
            assert "DB_PASSWORD_PATH" not in env
        else:
            assert "DB_PASSWORD" not in env, f"{cname}: DB_PASSWORD must not be set"
        if not (password_secret and no_password_env):
            assert "DB_PASSWORD_PATH" not in env
        for name, ref in (("DB_CERT", cert), ("DB_KEY", key), ("DB_ROOT_CERT", root_cert)):
            if not ref:
                assert name not in env, f"{cname}: {name} must not be set"
        if not search_path:
            assert "DB_SEARCH_PATH" not in env
        # No password value anywhere in the env: only references.
        for e in container["env"]:
            assert not e["name"].startswith("DB_PASSWORD") or "value" not in e or e["name"] == "DB_PASSWORD_PATH"
        # CODER_MAX_DB_CONNECTIONS comes from coderd.extraEnvs, after the chart's own env.
        assert env["CODER_MAX_DB_CONNECTIONS"]["value"] == str(max_db_connections)
        assert names.index("CODER_MAX_DB_CONNECTIONS") > max(names.index(n) for n in CHART_DB_ENV)
        if cname == "coderd":
            assert env["SKIP_MIGRATIONS"]["value"] == "true"
            assert names.index("CODER_MAX_DB_CONNECTIONS") > names.index("SKIP_MIGRATIONS")
        else:
            assert "SKIP_MIGRATIONS" not in env

        mounts = {m["name"]: m for m in container.get("volumeMounts", [])}
        for vname, ref, path in (("pgcert", cert, "/etc/ssl/certs/pg/cert"),
                                 ("pgkey", key, "/etc/ssl/certs/pg/key"),
                                 ("pgrootcert", root_cert, "/etc/ssl/certs/pg/rootcert")):
            if ref:
                assert mounts[vname] == {"name": vname, "mountPath": path, "readOnly": True}, mounts.get(vname)
            else:
                assert vname not in mounts
        if password_secret and no_password_env:
            assert mounts[password_secret] == {"name": password_secret, "readOnly": True,
                                               "mountPath": f"/run/secrets/{password_secret}"}

    for vname, ref in (("pgcert", cert), ("pgkey", key), ("pgrootcert", root_cert)):
        if ref:
            assert volumes[vname]["secret"]["secretName"] == ref["name"]
            assert "defaultMode" not in volumes[vname]["secret"] or volumes[vname]["secret"]["defaultMode"] == 420
        else:
            assert vname not in volumes
    if password_secret and no_password_env:
        assert volumes[password_secret]["secret"]["secretName"] == password_secret
    elif password_secret:
        assert password_secret not in volumes


def check_values(values, *, password_secret):
    """What helm stores: the values only name Secrets; postgres.default.enable is false."""
    pg = values["postgres"]
    assert pg["default"]["enable"] is False
    assert isinstance(pg["port"], str)
    assert pg["passwordSecret"] == (password_secret or "")
    assert "password" not in {k.lower() for k in pg}
