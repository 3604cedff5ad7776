-- Stand-in schema, not Coder's. Migration 3: workspaces.
CREATE TABLE standin_workspaces (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    owner_id    uuid NOT NULL REFERENCES standin_users (id) ON DELETE CASCADE,
    template_id uuid NOT NULL REFERENCES standin_templates (id) ON DELETE RESTRICT,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (owner_id, name)
);
