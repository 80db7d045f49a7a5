CREATE TABLE accounts_old (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    issuer TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_type TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL
);
INSERT INTO accounts_old (id, user_id, issuer, account_type, created_at)
    SELECT id, user_id, issuer, account_type, created_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_old RENAME TO accounts;
CREATE INDEX accounts_user_id_created_at_idx ON accounts (user_id, created_at, id);
DROP INDEX users_id_issuer_key;
