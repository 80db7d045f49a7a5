-- An account belongs to a user of its own project: the pair (user_id, issuer) must name a user
-- row's (id, issuer), so that no write, by any path, can attach an account to another
-- project's user. It replaces the key on user_id alone, which it implies.
ALTER TABLE users ADD CONSTRAINT users_id_issuer_key UNIQUE (id, issuer);
ALTER TABLE accounts DROP CONSTRAINT accounts_user_id_fkey;
ALTER TABLE accounts ADD CONSTRAINT accounts_user_id_issuer_fkey
    FOREIGN KEY (user_id, issuer) REFERENCES users (id, issuer) ON DELETE CASCADE;
