-- POST /api/v0/user/create: the statements the server issues, in its transaction (the user and
-- its identifier's row). Ids are random numbers here (pgbench makes no UUIDs); the statements
-- are the same. tests/it/bench_sql.rs checks them. The server binds NULL where this script
-- writes NULL/*$*/ (pgbench's variables cannot be NULL); the check reads that mark as a bind.
\set id random(1, 9000000000000000000)
BEGIN;
INSERT INTO "users" ("id", "issuer", "identifier", "identifier_normalized", "enrolled", "default_method", "identifiers", "created_at", "updated_at", "deleted_at", "disabled_at", "client_user_id") VALUES (:id, :issuer, :id, :id, :enrolled, NULL/*$*/, NULL/*$*/, :ts, :ts, NULL/*$*/, NULL/*$*/, :id);
INSERT INTO "user_identifiers" ("issuer", "user_id", "identifier_normalized") VALUES (:issuer, :id, :id);
COMMIT;
