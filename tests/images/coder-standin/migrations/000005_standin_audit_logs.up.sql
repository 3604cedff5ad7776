-- Stand-in schema, not Coder's. Migration 5: audit log with an index.
CREATE TABLE standin_audit_logs (
    id          bigserial PRIMARY KEY,
    "time"      timestamptz NOT NULL DEFAULT now(),
    action      text NOT NULL,
    resource_id uuid
);
CREATE INDEX standin_audit_logs_time_idx ON standin_audit_logs ("time" DESC);
