# Copyright (c) 2026, coderops maintainers
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Note that this module util is **PRIVATE** to the collection. It can have breaking changes at any time.
# Do not use this from other collections or standalone plugins/modules!

"""Coder's schema state, read the way a running Coder reads it (chart contract, "Coder and its
database"):

* Coder v2 keeps golang-migrate's `schema_migrations (version, dirty)` in the schema it uses: the
  first schema of its search_path (`current_schema()`).
* Coder v2 aborts on a database whose current schema holds `migration_cursor`, Coder v1's
  migrations table ("currently connected to a Coder v1 database"); Coder v1 is closed source, so
  its table is compared as a whole (every row, as JSON).

Read-only, inside coder_pg_facts' read-only transaction, with its statement timeout.
"""

from __future__ import annotations

_MARK = "/* coderops.deploy.coder_pg_facts */ "

_TABLES_SQL = _MARK + """
SELECT current_schema(),
       EXISTS (SELECT 1 FROM information_schema.tables
               WHERE table_schema = current_schema() AND table_name = 'schema_migrations'),
       EXISTS (SELECT 1 FROM information_schema.tables
               WHERE table_schema = current_schema() AND table_name = 'migration_cursor')
"""
_V2_SQL = _MARK + "SELECT version, dirty FROM schema_migrations"
_V1_SQL = _MARK + ("SELECT coalesce(json_agg(to_jsonb(m) ORDER BY to_jsonb(m)::text), '[]')::text"
                   " FROM migration_cursor m")


def read_state(cur, search_path=None):
    """{"schema", "generation" (none, v1, v2 or both), "version", "dirty", "v1_cursor"}.

    `search_path`, when given, is set for this transaction only, as Coder sets it for its own
    connections (v1 DB_SEARCH_PATH, v2 the URL's search_path)."""
    if search_path:
        cur.execute(_MARK + "SELECT set_config('search_path', %s, true)", (search_path,))
    cur.execute(_TABLES_SQL)
    schema, has_v2, has_v1 = cur.fetchone()
    state = {"schema": schema, "generation": "none", "version": None, "dirty": False, "v1_cursor": None}
    if has_v2:
        cur.execute(_V2_SQL)
        row = cur.fetchone()  # golang-migrate keeps one row; an empty table is version none
        if row:
            state["version"], state["dirty"] = int(row[0]), bool(row[1])
    if has_v1:
        cur.execute(_V1_SQL)
        state["v1_cursor"] = cur.fetchone()[0]
    state["generation"] = {(True, True): "both", (True, False): "v2", (False, True): "v1"}.get(
        (has_v2, has_v1), "none")
    return state
