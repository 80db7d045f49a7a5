-- POST /api/v0/user/create: the one statement the server issues. Ids are random numbers here
-- (pgbench makes no UUIDs); the statement is the same. tests/it/bench_sql.rs checks it.
\set id random(1, 9000000000000000000)
INSERT INTO "users" ("id", "issuer", "identifier", "identifier_normalized", "enrolled", "default_method", "identifiers", "created_at", "updated_at", "deleted_at", "disabled_at") VALUES (:id, :issuer, :id, :id, :enrolled, DEFAULT, DEFAULT, :ts, :ts, DEFAULT, DEFAULT);
