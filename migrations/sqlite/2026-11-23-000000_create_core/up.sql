-- Same tables as migrations/postgres; SQLite compares TEXT bytewise already.
-- Timestamps are stored by diesel as text ("YYYY-MM-DD HH:MM:SS" and a fraction of 0, 3, 6 or 9
-- digits); the ISO layout sorts in time order.
CREATE TABLE projects (
    id TEXT NOT NULL PRIMARY KEY,
    name TEXT NOT NULL,
    require_secret BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);

CREATE TABLE project_secrets (
    id TEXT NOT NULL PRIMARY KEY,
    project_id TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    secret_hash BLOB NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX project_secrets_project_id_idx ON project_secrets (project_id);

CREATE TABLE users (
    id TEXT NOT NULL PRIMARY KEY,
    issuer TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    identifier_normalized TEXT NOT NULL,
    enrolled TEXT NOT NULL DEFAULT '[]',
    default_method TEXT,
    identifiers TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX users_issuer_identifier_key ON users (issuer, identifier_normalized);
CREATE INDEX users_issuer_created_at_id_idx ON users (issuer, created_at DESC, id DESC);
