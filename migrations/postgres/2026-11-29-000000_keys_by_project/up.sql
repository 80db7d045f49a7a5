-- Every unique key of a project's table names the project (`issuer`), so that a sharded
-- PostgreSQL (Citus) can distribute these tables by project: a unique index there must hold the
-- distribution column. Ids stay unique within their project; nothing in the server relied on
-- more (no ON CONFLICT names these keys, and every query filters on the project).
--
-- compatible: the previous release runs unchanged on these keys: its inserts carry the issuer,
-- its lookups filter on it, and each unique violation it could meet is still raised.

-- compatible: users_id_issuer_key (id, issuer), which the foreign keys already reference,
-- remains the table's unique key.
ALTER TABLE users DROP CONSTRAINT users_pkey;
ALTER TABLE users REPLICA IDENTITY USING INDEX users_id_issuer_key;

-- compatible: replaced by a key that adds the project.
ALTER TABLE accounts DROP CONSTRAINT accounts_pkey;
ALTER TABLE accounts ADD CONSTRAINT accounts_pkey PRIMARY KEY (id, issuer);

-- compatible: replaced by a key that adds the project.
ALTER TABLE user_identifiers DROP CONSTRAINT user_identifiers_pkey;
ALTER TABLE user_identifiers
    ADD CONSTRAINT user_identifiers_pkey PRIMARY KEY (user_id, issuer, identifier_normalized);

-- compatible: replaced by a key that adds the project.
ALTER TABLE user_methods DROP CONSTRAINT user_methods_pkey;
ALTER TABLE user_methods ADD CONSTRAINT user_methods_pkey PRIMARY KEY (id, issuer);
-- compatible: replaced by an index that adds the project.
DROP INDEX user_methods_user_method_key;
CREATE UNIQUE INDEX user_methods_user_method_key
    ON user_methods (user_id, issuer, method, key_hash);

-- compatible: replaced by a key that adds the project.
ALTER TABLE credential_attempts DROP CONSTRAINT credential_attempts_pkey;
ALTER TABLE credential_attempts
    ADD CONSTRAINT credential_attempts_pkey PRIMARY KEY (user_id, issuer, credential);

-- compatible: replaced by a key that adds the project.
ALTER TABLE events DROP CONSTRAINT events_pkey;
ALTER TABLE events ADD CONSTRAINT events_pkey PRIMARY KEY (id, issuer);

-- compatible: replaced by a key that adds the project.
ALTER TABLE audit_events DROP CONSTRAINT audit_events_pkey;
ALTER TABLE audit_events ADD CONSTRAINT audit_events_pkey PRIMARY KEY (id, issuer);

-- compatible: replaced by a key that adds the project.
ALTER TABLE console_sessions DROP CONSTRAINT console_sessions_pkey;
ALTER TABLE console_sessions ADD CONSTRAINT console_sessions_pkey PRIMARY KEY (id, issuer);
