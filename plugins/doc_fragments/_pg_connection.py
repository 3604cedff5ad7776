# Copyright (c) 2025, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this doc fragment is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!
#
# Paired one-to-one with pg_connection_argument_spec() in plugins/module_utils/_pg_connection.py;
# a unit test keeps the two in step.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  login_host:
    description:
      - Host name or IP address of the PostgreSQL server.
      - Read from the environment variable E(CODER_PG_HOST) when not set.
      - When neither is set, libpq's default applies (E(PGHOST), else the local Unix socket).
    type: str
  login_port:
    description:
      - TCP port of the server.
      - Read from E(CODER_PG_PORT) when not set; libpq's default (E(PGPORT), else 5432) applies when
        neither is set.
    type: int
  login_user:
    description:
      - The role to log in as, the one Coder will use.
      - Read from E(CODER_PG_USER) when not set; libpq's default (E(PGUSER), else the OS user) applies
        when neither is set.
    type: str
  login_password:
    description:
      - Password of O(login_user).
      - Read from E(CODER_PG_PASSWORD) when not set. Not for O(connector=awsiamrds).
      - Never returned, logged or put into a connection string; it goes to libpq as a keyword argument.
    type: str
  login_db:
    description:
      - The database to connect to, the one Coder will use.
      - Read from E(CODER_PG_DATABASE) when not set; libpq's default (the user name) applies when
        neither is set.
    type: str
  ssl_mode:
    description:
      - libpq C(sslmode) of the connection.
      - Read from E(CODER_PG_SSLMODE) when not set.
      - The default V(require) matches the Coder chart's default C(postgres.sslMode), so the check
        sees what Coder will see.
      - V(verify-ca) and V(verify-full) need the CA bundle in O(ca_cert). With V(require) and
        O(ca_cert) set, libpq checks the certificate chain too (as with V(verify-ca)).
    type: str
    default: require
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - Path of the CA bundle (PEM) that signed the server's certificate (libpq C(sslrootcert)).
      - Read from E(CODER_PG_SSLROOTCERT) when not set.
    type: path
  ssl_cert:
    description:
      - Path of the client certificate (PEM) for certificate (mTLS) authentication (libpq C(sslcert)).
      - Read from E(CODER_PG_SSLCERT) when not set. Needs O(ssl_key).
    type: path
  ssl_key:
    description:
      - Path of the client certificate's private key (PEM) (libpq C(sslkey)). Needs O(ssl_cert).
      - Read from E(CODER_PG_SSLKEY) when not set.
    type: path
  connect_timeout:
    description:
      - Seconds to wait for the connection (libpq C(connect_timeout)); also bounds each statement
        and unacknowledged network writes, so the module never hangs.
      - Between 1 and 600. libpq itself would wait forever without it.
    type: int
    default: 10
  connector:
    description:
      - V(postgres) logs in with O(login_password) (or certificate, or no password).
      - V(awsiamrds) logs in to Amazon RDS with an IAM authentication token that the module
        generates itself with boto3, from O(aws_region) and the ambient AWS credentials (instance
        profile, IRSA, E(AWS_PROFILE), ...). It needs O(login_host) and O(login_user), TLS, and no O(login_password).
    type: str
    default: postgres
    choices: [postgres, awsiamrds]
  aws_region:
    description:
      - AWS region of the RDS instance, for O(connector=awsiamrds).
      - Read from E(AWS_REGION), then E(AWS_DEFAULT_REGION) when not set.
    type: str
notes:
  - "Environment variables read when an option is not set (an AWX credential type can inject them):
    E(CODER_PG_HOST), E(CODER_PG_PORT), E(CODER_PG_USER), E(CODER_PG_PASSWORD), E(CODER_PG_DATABASE),
    E(CODER_PG_SSLMODE), E(CODER_PG_SSLROOTCERT), E(CODER_PG_SSLCERT), E(CODER_PG_SSLKEY); and
    E(AWS_REGION) / E(AWS_DEFAULT_REGION) for O(aws_region)."
  - Put E(CODER_PG_PASSWORD) into the environment of C(ansible-playbook) itself, as an AWX
    credential does; do not set it with the task keyword C(environment), because Ansible writes
    those values into the module's command line (visible in C(-vvv) output and the process list).
  - The module uses psycopg2 (C(psycopg2-binary) is fine) on the host that runs it, and boto3 for
    O(connector=awsiamrds).
requirements:
  - psycopg2 >= 2.8 with libpq 12 or later (C(psycopg2-binary) bundles one)
  - boto3 (only for O(connector=awsiamrds))
"""
