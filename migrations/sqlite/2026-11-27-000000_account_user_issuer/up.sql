-- An account belongs to a user of its own project: the pair (user_id, issuer) must name a user
-- row's (id, issuer), so that no write, by any path, can attach an account to another
-- project's user. SQLite cannot add a constraint to a table, so accounts is rebuilt with it;
-- copying the rows checks every existing account against the new key.
CREATE UNIQUE INDEX users_id_issuer_key ON users (id, issuer);

CREATE TABLE accounts_new (
    id TEXT NOT NULL PRIMARY KEY,
    user_id TEXT NOT NULL,
    issuer TEXT NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    account_type TEXT NOT NULL,
    created_at TIMESTAMP NOT NULL,
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE
);
INSERT INTO accounts_new (id, user_id, issuer, account_type, created_at)
    SELECT id, user_id, issuer, account_type, created_at FROM accounts;
DROP TABLE accounts;
ALTER TABLE accounts_new RENAME TO accounts;
CREATE INDEX accounts_user_id_created_at_idx ON accounts (user_id, created_at, id);
