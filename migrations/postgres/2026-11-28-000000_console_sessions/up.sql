-- Sessions of the browser console (`/admin/`). The cookie carries the project's id and a random
-- 256-bit token; only the token's SHA-256 is stored. A session belongs to the secret it was
-- made with: revoking that secret ends it. `seen_at` moves with use (at most once a minute) for
-- the idle timeout; `ended_at` is set at sign-out. The unique key starts with the project, so
-- that every lookup names the project (as every other project-scoped query does).
CREATE TABLE console_sessions (
    id TEXT COLLATE "C" PRIMARY KEY,
    issuer TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    token_hash BYTEA NOT NULL,
    secret_id TEXT COLLATE "C" NOT NULL REFERENCES project_secrets (id) ON DELETE CASCADE,
    created_at TIMESTAMP NOT NULL,
    seen_at TIMESTAMP NOT NULL,
    ended_at TIMESTAMP
);
CREATE UNIQUE INDEX console_sessions_issuer_token_key ON console_sessions (issuer, token_hash);
-- The upkeep deletes sessions long over, of every project.
CREATE INDEX console_sessions_seen_at_idx ON console_sessions (seen_at);
