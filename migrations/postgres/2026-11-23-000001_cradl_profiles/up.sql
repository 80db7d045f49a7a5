-- Cradl v2 profiles live on the user row (one row per user, shared with the v0 API): v0 queries
-- select only the v0 columns. The password is kept only as an argon2id PHC string.
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN phone_number TEXT;
ALTER TABLE users ADD COLUMN first_name TEXT;
ALTER TABLE users ADD COLUMN last_name TEXT;
ALTER TABLE users ADD COLUMN kyc_id TEXT;

-- Accounts opened by a user (who must have a kyc_id). `issuer` repeats the user's issuer so that
-- every query can be scoped by project.
CREATE TABLE accounts (
    id TEXT COLLATE "C" PRIMARY KEY,
    user_id TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer TEXT COLLATE "C" NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_type TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX accounts_user_id_created_at_idx ON accounts (user_id, created_at, id);
