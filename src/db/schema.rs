//! The one diesel schema, shared by PostgreSQL and SQLite (see `migrations/`).

diesel::table! {
    projects (id) {
        id -> Text,
        name -> Text,
        require_secret -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    project_secrets (id) {
        id -> Text,
        project_id -> Text,
        prefix -> Text,
        secret_hash -> Binary,
        created_at -> Timestamp,
        revoked_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    users (id) {
        id -> Text,
        issuer -> Text,
        identifier -> Text,
        identifier_normalized -> Text,
        enrolled -> Text,
        default_method -> Nullable<Text>,
        identifiers -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        deleted_at -> Nullable<Timestamp>,
        password_hash -> Nullable<Text>,
        phone_number -> Nullable<Text>,
        first_name -> Nullable<Text>,
        last_name -> Nullable<Text>,
        kyc_id -> Nullable<Text>,
        disabled_at -> Nullable<Timestamp>,
        client_user_id -> Text,
    }
}

diesel::table! {
    user_identifiers (user_id, identifier_normalized) {
        issuer -> Text,
        user_id -> Text,
        identifier_normalized -> Text,
        deleted_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    user_methods (id) {
        id -> Text,
        issuer -> Text,
        user_id -> Text,
        method -> Text,
        key_hash -> Text,
        algorithm -> Nullable<Text>,
        public_key -> Nullable<Text>,
        pin_hash -> Nullable<Text>,
        device_name -> Nullable<Text>,
        device_type -> Nullable<Text>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    credential_attempts (user_id, credential) {
        issuer -> Text,
        user_id -> Text,
        credential -> Text,
        failures -> Integer,
        locked_until -> Nullable<Timestamp>,
    }
}

diesel::table! {
    events (id) {
        id -> BigInt,
        issuer -> Text,
        user_id -> Text,
        client_user_id -> Text,
        event -> Text,
        method -> Text,
        ip -> Text,
        location -> Text,
        client_timestamp -> Text,
        approved -> Bool,
        created_at -> Timestamp,
    }
}

diesel::table! {
    used_signatures (issuer, signature_hash) {
        issuer -> Text,
        signature_hash -> Text,
        used_at -> Timestamp,
    }
}

diesel::table! {
    accounts (id) {
        id -> Text,
        user_id -> Text,
        issuer -> Text,
        account_type -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    audit_events (id) {
        id -> Text,
        issuer -> Text,
        at -> Timestamp,
        actor -> Text,
        action -> Text,
        user_id -> Nullable<Text>,
        request_id -> Nullable<Text>,
        detail -> Text,
    }
}

diesel::table! {
    idempotency_keys (issuer, key) {
        issuer -> Text,
        key -> Text,
        fingerprint -> Binary,
        started_at -> Timestamp,
        status -> Nullable<Integer>,
        content_type -> Nullable<Text>,
        body -> Nullable<Binary>,
        resource_id -> Nullable<Text>,
    }
}

diesel::table! {
    console_sessions (id) {
        id -> Text,
        issuer -> Text,
        token_hash -> Binary,
        secret_id -> Text,
        created_at -> Timestamp,
        seen_at -> Timestamp,
        ended_at -> Nullable<Timestamp>,
    }
}

diesel::joinable!(project_secrets -> projects (project_id));
diesel::joinable!(console_sessions -> project_secrets (secret_id));
diesel::joinable!(users -> projects (issuer));
diesel::joinable!(accounts -> users (user_id));
diesel::allow_tables_to_appear_in_same_query!(
    projects,
    project_secrets,
    users,
    accounts,
    audit_events,
    idempotency_keys,
    user_identifiers,
    user_methods,
    credential_attempts,
    events,
    used_signatures,
    console_sessions
);
