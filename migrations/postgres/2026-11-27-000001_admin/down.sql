DROP TABLE idempotency_keys;
DROP TABLE audit_events;
DROP INDEX users_deleted_at_idx;
DROP INDEX users_issuer_identifier_id_idx;
DROP INDEX users_issuer_created_at_id_idx;
CREATE INDEX users_issuer_created_at_id_idx ON users (issuer, created_at DESC, id DESC);
-- Fails while two users share an identifier (one of them deleted): purge one first.
DROP INDEX users_issuer_identifier_live_key;
CREATE UNIQUE INDEX users_issuer_identifier_key ON users (issuer, identifier_normalized);
ALTER TABLE users DROP COLUMN disabled_at;
