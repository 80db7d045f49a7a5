-- What Cotter's SDKs need: the app's own user id, several identifiers per user, enrolled
-- methods (PIN hashes, device keys), login events, replay protection and attempt counters.

-- The app's own id for the user; the user's id when the app gave none. Unique among the users
-- that are not deleted, as identifiers are. Exact (an app's id is case-sensitive).
ALTER TABLE users ADD COLUMN client_user_id TEXT COLLATE "C";
UPDATE users SET client_user_id = id;
ALTER TABLE users ALTER COLUMN client_user_id SET NOT NULL;
CREATE UNIQUE INDEX users_issuer_client_user_id_live_key ON users (issuer, client_user_id)
    WHERE deleted_at IS NULL;

-- Every identifier of every user (the primary one included), so that one unique index decides
-- that no identifier names two live users of a project. `deleted_at` mirrors the user's.
CREATE TABLE user_identifiers (
    issuer TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    identifier_normalized TEXT COLLATE "C" NOT NULL,
    deleted_at TIMESTAMP,
    PRIMARY KEY (user_id, identifier_normalized),
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE
);
INSERT INTO user_identifiers (issuer, user_id, identifier_normalized, deleted_at)
    SELECT issuer, id, identifier_normalized, deleted_at FROM users;
CREATE UNIQUE INDEX user_identifiers_live_key ON user_identifiers (issuer, identifier_normalized)
    WHERE deleted_at IS NULL;

-- Enrolled methods: one PIN (its argon2id hash) or any number of device keys per user.
-- `key_hash` is the SHA-256 (hex) of the key's bytes, '' for a PIN: one row per key.
CREATE TABLE user_methods (
    id TEXT COLLATE "C" PRIMARY KEY,
    issuer TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    method TEXT NOT NULL,
    key_hash TEXT COLLATE "C" NOT NULL,
    algorithm TEXT,
    public_key TEXT,
    pin_hash TEXT,
    device_name TEXT,
    device_type TEXT,
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE
);
CREATE UNIQUE INDEX user_methods_user_method_key ON user_methods (user_id, method, key_hash);

-- Failed checks of a user's PIN or password, and the lock they earned.
CREATE TABLE credential_attempts (
    issuer TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    credential TEXT NOT NULL,
    failures INTEGER NOT NULL,
    locked_until TIMESTAMP,
    PRIMARY KEY (user_id, credential),
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE
);

-- Login approvals (`POST /api/v0/event/create`): integer ids, as Cotter's SDKs decode them.
CREATE TABLE events (
    id BIGSERIAL PRIMARY KEY,
    issuer TEXT COLLATE "C" NOT NULL,
    user_id TEXT COLLATE "C" NOT NULL,
    client_user_id TEXT NOT NULL,
    event TEXT NOT NULL,
    method TEXT NOT NULL,
    ip TEXT NOT NULL,
    location TEXT NOT NULL,
    client_timestamp TEXT NOT NULL,
    approved BOOLEAN NOT NULL,
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE
);
CREATE INDEX events_user_id_id_idx ON events (user_id, id DESC);
-- The janitor deletes events older than EVENT_RETENTION_DAYS, of every project.
CREATE INDEX events_created_at_idx ON events (created_at);

-- Signatures already accepted, kept while their timestamp is inside the allowed clock skew:
-- the primary key refuses a replay, on any instance.
CREATE TABLE used_signatures (
    issuer TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    signature_hash TEXT COLLATE "C" NOT NULL,
    used_at TIMESTAMP NOT NULL,
    PRIMARY KEY (issuer, signature_hash)
);
CREATE INDEX used_signatures_used_at_idx ON used_signatures (used_at);
