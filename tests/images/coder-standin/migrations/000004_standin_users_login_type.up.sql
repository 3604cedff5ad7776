-- Stand-in schema, not Coder's. Migration 4: a column added to an existing table.
ALTER TABLE standin_users ADD COLUMN login_type text NOT NULL DEFAULT 'password';
