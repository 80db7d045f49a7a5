-- Projects (issuers). `id` is the project's API_KEY_ID.
-- Identifier columns use the "C" collation: byte order, like SQLite, and cheaper to compare.
CREATE TABLE projects (
    id TEXT COLLATE "C" PRIMARY KEY,
    name TEXT NOT NULL,
    require_secret BOOLEAN NOT NULL DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL
);

-- API secrets: only a SHA-256 of each secret is kept. A project may hold several live secrets
-- at once so that a rotation can overlap.
CREATE TABLE project_secrets (
    id TEXT COLLATE "C" PRIMARY KEY,
    project_id TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    prefix TEXT NOT NULL,
    secret_hash BYTEA NOT NULL UNIQUE,
    created_at TIMESTAMP NOT NULL,
    revoked_at TIMESTAMP
);
CREATE INDEX project_secrets_project_id_idx ON project_secrets (project_id);

-- Users of every project. `identifier` is kept as given (trimmed); uniqueness is on the
-- normalised form (NFKC + lower case), computed in Rust.
CREATE TABLE users (
    id TEXT COLLATE "C" PRIMARY KEY,
    issuer TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    identifier TEXT NOT NULL,
    identifier_normalized TEXT COLLATE "C" NOT NULL,
    enrolled TEXT NOT NULL DEFAULT '[]',
    default_method TEXT,
    identifiers TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    deleted_at TIMESTAMP
);
CREATE UNIQUE INDEX users_issuer_identifier_key ON users (issuer, identifier_normalized);
CREATE INDEX users_issuer_created_at_id_idx ON users (issuer, created_at DESC, id DESC);
