-- GET /api/v0/user?identifier=N: the one query the server issues (keys come from its cache).
-- tests/it/bench_sql.rs checks that this is exactly the server's SQL.
\set n random(0, :big_users - 1)
SELECT "users"."id", "users"."issuer", "users"."identifier", "users"."identifier_normalized", "users"."enrolled", "users"."default_method", "users"."identifiers", "users"."created_at", "users"."updated_at", "users"."deleted_at", "users"."disabled_at", "users"."client_user_id" FROM "users" WHERE ((("users"."issuer" = :issuer) AND ("users"."deleted_at" IS NULL)) AND ("users"."identifier_normalized" = :n)) LIMIT :one;
