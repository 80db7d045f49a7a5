DROP TABLE used_signatures;
DROP TABLE events;
DROP TABLE credential_attempts;
DROP TABLE user_methods;
DROP TABLE user_identifiers;
DROP INDEX users_issuer_client_user_id_live_key;
ALTER TABLE users DROP COLUMN client_user_id;
