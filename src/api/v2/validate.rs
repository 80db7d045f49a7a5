//! v2 request bodies: their shapes as the document shows them, and the checks that enforce
//! them by hand, so that every problem found is reported together (`Error::Problems`: one 400
//! with every code) instead of the first one only.

use actix_web::{web, HttpRequest};
use serde_json::{Map, Value};

use crate::accounts::ACCOUNT_TYPES;
use crate::api::request::{parse_object, read_json, StrictJson};
use crate::api::rules::{
    self, valid_email, valid_phone, MAX_KYC_ID_CHARS, MAX_NAME_CHARS, MAX_PASSWORD_CHARS,
    MIN_PASSWORD_CHARS,
};
use crate::error::{Error, Problem};
use crate::ids::UserId;
use crate::users::Identifier;

/// The body of `POST /v2/users`, for the document: the handler validates the JSON by hand, so
/// that it can report every problem at once.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUserBody {
    pub login: LoginBody,
    #[schema(schema_with = rules::phone_schema)]
    pub phone_number: String,
    #[schema(schema_with = rules::name_schema)]
    pub first_name: String,
    #[schema(schema_with = rules::name_schema)]
    pub last_name: String,
}

/// `login` of `POST /v2/users`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    #[schema(schema_with = rules::email_schema)]
    pub email: String,
    #[schema(schema_with = rules::password_schema)]
    pub password: String,
}

/// The body of `PATCH /v2/users/{user_id}`: only `kyc_id` may be set. The body may also repeat
/// the path's `user_id` (a Cradl client habit); any other value is `USER_ID_MISMATCH`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserBody {
    #[schema(schema_with = rules::kyc_id_schema)]
    pub kyc_id: String,
}

/// The body of `POST /v2/accounts`.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountBody {
    /// The user's id; an id that is not a UUID is answered like an unknown one.
    #[schema(schema_with = rules::uuid_schema)]
    pub user_id: String,
    pub account_type: AccountType,
}

/// The kinds of account.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AccountType {
    Checking,
    Savings,
}

/// Every problem found in a request body, reported together as one 400.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, code: &'static str, message: impl Into<String>) {
        self.0.push(Problem {
            code,
            message: message.into(),
        });
    }

    /// Reports keys of `object` that are not in `allowed` (`FIELD_NOT_ALLOWED`).
    fn only(&mut self, object: &Map<String, Value>, allowed: &[&str], within: &str) {
        let mut extra: Vec<&str> = object
            .keys()
            .map(String::as_str)
            .filter(|k| !allowed.contains(k))
            .collect();
        if !extra.is_empty() {
            extra.sort_unstable();
            self.add(
                "FIELD_NOT_ALLOWED",
                format!("{within}field(s) not allowed here: {}", extra.join(", ")),
            );
        }
    }

    fn finish(self) -> Result<(), Error> {
        if self.0.is_empty() {
            return Ok(());
        }
        Err(Error::Problems(self.0))
    }
}

/// Reads the body, which must be a JSON object (`read_json` refuses anything else), with
/// duplicate keys refused at every depth.
pub async fn object(req: &HttpRequest, payload: web::Payload) -> Result<Map<String, Value>, Error> {
    as_object(read_json::<StrictJson>(req, payload).await?)
}

/// Parses a body already read (`request::read_body`) as [`object`] does.
pub fn parse_body(body: &[u8]) -> Result<Map<String, Value>, Error> {
    as_object(parse_object::<StrictJson>(body)?)
}

fn as_object(json: StrictJson) -> Result<Map<String, Value>, Error> {
    match json {
        StrictJson(Value::Object(map)) => Ok(map),
        _ => Err(Error::Invalid("request body must be a JSON object".into())),
    }
}

/// A required string field: `None` after recording `<FIELD>_REQUIRED` or `<FIELD>_INVALID`.
fn string_field<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    required: &'static str,
    invalid: &'static str,
    problems: &mut Problems,
) -> Option<&'a str> {
    match object.get(key) {
        None | Some(Value::Null) => {
            problems.add(required, format!("{key} is required"));
            None
        }
        Some(Value::String(s)) => Some(s),
        Some(_) => {
            problems.add(invalid, format!("{key} must be a string"));
            None
        }
    }
}

/// A validation that passed with a field missing: a bug, not the client's fault.
fn missing() -> Error {
    Error::Internal("validation passed with a field missing".into())
}

/// A create request that passed validation.
pub struct NewUser {
    pub email: Identifier,
    pub password: String,
    pub phone_number: String,
    pub first_name: String,
    pub last_name: String,
}

/// Checks the body of `POST /v2/users`.
pub fn parse_new_user(body: Map<String, Value>) -> Result<NewUser, Error> {
    let mut problems = Problems::default();
    problems.only(
        &body,
        &["login", "phone_number", "first_name", "last_name"],
        "",
    );

    let (mut email, mut password) = (None, None);
    match body.get("login") {
        None | Some(Value::Null) => {
            problems.add("EMAIL_REQUIRED", "login.email is required");
            problems.add("PASSWORD_REQUIRED", "login.password is required");
        }
        Some(Value::Object(login)) => {
            problems.only(login, &["email", "password"], "login: ");
            if let Some(raw) = string_field(
                login,
                "email",
                "EMAIL_REQUIRED",
                "EMAIL_INVALID",
                &mut problems,
            ) {
                match Identifier::parse(raw) {
                    Ok(id) if valid_email(raw) => email = Some(id),
                    _ => problems.add(
                        "EMAIL_INVALID",
                        "login.email is not a valid email address (ASCII local@domain.tld, \
                         at most 254 characters, no surrounding spaces)",
                    ),
                }
            }
            if let Some(raw) = string_field(
                login,
                "password",
                "PASSWORD_REQUIRED",
                "PASSWORD_INVALID",
                &mut problems,
            ) {
                // Counted as sent, before any other work is done on it.
                let chars = raw.chars().count();
                if chars > MAX_PASSWORD_CHARS {
                    problems.add(
                        "PASSWORD_TOO_LONG",
                        format!("login.password must be at most {MAX_PASSWORD_CHARS} characters"),
                    );
                } else if chars < MIN_PASSWORD_CHARS {
                    problems.add(
                        "PASSWORD_TOO_SHORT",
                        format!("login.password must be at least {MIN_PASSWORD_CHARS} characters"),
                    );
                } else {
                    password = Some(raw.to_owned());
                }
            }
        }
        Some(_) => problems.add(
            "LOGIN_INVALID",
            "login must be an object with email and password",
        ),
    }

    let phone_number = string_field(
        &body,
        "phone_number",
        "PHONE_REQUIRED",
        "PHONE_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let ok = valid_phone(raw);
        if !ok {
            problems.add(
                "PHONE_INVALID",
                "phone_number must be E.164: + and 2 to 15 digits, the first not 0",
            );
        }
        ok.then(|| raw.to_owned())
    });
    let mut name = |key: &str, required, invalid| {
        string_field(&body, key, required, invalid, &mut problems).and_then(|raw| {
            let name = rules::trimmed_text(raw, MAX_NAME_CHARS).map(str::to_owned);
            if name.is_none() {
                problems.add(
                    invalid,
                    format!(
                        "{key} must be 1 to {MAX_NAME_CHARS} characters without control characters"
                    ),
                );
            }
            name
        })
    };
    let first_name = name("first_name", "FIRST_NAME_REQUIRED", "FIRST_NAME_INVALID");
    let last_name = name("last_name", "LAST_NAME_REQUIRED", "LAST_NAME_INVALID");

    problems.finish()?;
    match (email, password, phone_number, first_name, last_name) {
        (Some(email), Some(password), Some(phone_number), Some(first_name), Some(last_name)) => {
            Ok(NewUser {
                email,
                password,
                phone_number,
                first_name,
                last_name,
            })
        }
        _ => Err(missing()),
    }
}

/// Checks the body of `PATCH /v2/users/{user_id}` (`path_id` as the path has it); the KYC
/// reference, trimmed.
pub fn parse_patch(body: &Map<String, Value>, path_id: &str) -> Result<String, Error> {
    let mut problems = Problems::default();
    problems.only(body, &["kyc_id", "user_id"], "");
    match body.get("user_id") {
        None => {}
        Some(Value::String(s)) if matches!((UserId::parse(s), UserId::parse(path_id)), (Some(a), Some(b)) if a == b) =>
            {}
        Some(_) => problems.add(
            "USER_ID_MISMATCH",
            "user_id in the body must equal the user_id of the path",
        ),
    }
    let kyc_id = string_field(
        body,
        "kyc_id",
        "KYC_ID_REQUIRED",
        "KYC_ID_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let kyc_id = rules::trimmed_text(raw, MAX_KYC_ID_CHARS);
        if kyc_id.is_none() {
            problems.add(
                "KYC_ID_INVALID",
                format!(
                    "kyc_id must be 1 to {MAX_KYC_ID_CHARS} characters without control characters"
                ),
            );
        }
        kyc_id.map(str::to_owned)
    });
    problems.finish()?;
    kyc_id.ok_or_else(missing)
}

/// Checks the body of `POST /v2/accounts`: the user id as sent, and the account type.
pub fn parse_open_account(body: &Map<String, Value>) -> Result<(String, String), Error> {
    let mut problems = Problems::default();
    problems.only(body, &["user_id", "account_type"], "");
    let user = string_field(
        body,
        "user_id",
        "USER_ID_REQUIRED",
        "USER_ID_INVALID",
        &mut problems,
    )
    .map(str::to_owned);
    let account_type = string_field(
        body,
        "account_type",
        "ACCOUNT_TYPE_REQUIRED",
        "ACCOUNT_TYPE_INVALID",
        &mut problems,
    )
    .and_then(|raw| {
        let ok = ACCOUNT_TYPES.contains(&raw);
        if !ok {
            problems.add(
                "ACCOUNT_TYPE_INVALID",
                format!("account_type must be one of: {}", ACCOUNT_TYPES.join(", ")),
            );
        }
        ok.then(|| raw.to_owned())
    });
    problems.finish()?;
    match (user, account_type) {
        (Some(user), Some(account_type)) => Ok((user, account_type)),
        _ => Err(missing()),
    }
}
