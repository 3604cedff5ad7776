-- Stand-in schema, not Coder's. Migration 2: templates.
CREATE TABLE standin_templates (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
