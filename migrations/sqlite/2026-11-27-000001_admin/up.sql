-- The admin API: disabled users, soft delete with a reusable identifier, an audit trail and
-- stored answers of idempotent creates.

-- A disabled user stays visible to v0/v2 but may not open accounts.
ALTER TABLE users ADD COLUMN disabled_at TIMESTAMP;
-- The retention purge finds long-deleted users of every project without reading the others.
CREATE INDEX users_deleted_at_idx ON users (deleted_at) WHERE deleted_at IS NOT NULL;

-- An identifier is unique among the users that are not deleted: a soft-deleted user's
-- identifier may be taken again (restoring it then answers 409).
DROP INDEX users_issuer_identifier_key;
CREATE UNIQUE INDEX users_issuer_identifier_live_key ON users (issuer, identifier_normalized)
    WHERE deleted_at IS NULL;

-- Every list order walks an index of the project's rows, whatever the status filter: the status
-- columns trail each key so that filtering and counting read the index alone.
DROP INDEX users_issuer_created_at_id_idx;
CREATE INDEX users_issuer_created_at_id_idx
    ON users (issuer, created_at DESC, id DESC, deleted_at, disabled_at);
CREATE INDEX users_issuer_identifier_id_idx
    ON users (issuer, identifier_normalized, id, deleted_at, disabled_at);

-- Who changed what. `detail` is a JSON object that never holds identifiers, passwords or
-- secrets, so that erasing a user leaves no personal data here. `user_id` is kept after a
-- purge: a random id, not personal data.
CREATE TABLE audit_events (
    id TEXT NOT NULL PRIMARY KEY,
    issuer TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    at TIMESTAMP NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    user_id TEXT,
    request_id TEXT,
    detail TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_issuer_at_id_idx ON audit_events (issuer, at DESC, id DESC);

-- The first answer to a create sent with an `Idempotency-Key`, per project and key. `status`
-- is NULL while the first request runs. `fingerprint` is a SHA-256 of method, path and body.
-- `resource_id` is the id the answer names, so that purging a user removes stored answers
-- that carry its data.
CREATE TABLE idempotency_keys (
    issuer TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    started_at TIMESTAMP NOT NULL,
    status INTEGER,
    content_type TEXT,
    body BLOB,
    resource_id TEXT,
    PRIMARY KEY (issuer, key)
);
CREATE INDEX idempotency_keys_started_at_idx ON idempotency_keys (started_at);
CREATE INDEX idempotency_keys_resource_id_idx ON idempotency_keys (resource_id);
