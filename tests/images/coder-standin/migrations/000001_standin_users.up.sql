-- Stand-in schema, not Coder's. Migration 1: site configuration (with a
-- deployment id, as Coder keeps one) and users.
CREATE TABLE standin_site_configs (
    key   text PRIMARY KEY,
    value text NOT NULL
);
INSERT INTO standin_site_configs (key, value) VALUES ('deployment_id', gen_random_uuid()::text);

CREATE TABLE standin_users (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    username   text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
