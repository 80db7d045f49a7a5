ALTER TABLE accounts DROP CONSTRAINT accounts_user_id_issuer_fkey;
ALTER TABLE accounts ADD CONSTRAINT accounts_user_id_fkey
    FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE;
ALTER TABLE users DROP CONSTRAINT users_id_issuer_key;
