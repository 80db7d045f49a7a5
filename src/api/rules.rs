//! The input rules that the OpenAPI document states as JSON Schema, next to the checks that
//! enforce them, so that a client (or a fuzzer) reading the document knows exactly which values
//! the server accepts: a value valid by the schema is accepted, one invalid by it is refused.
//!
//! Emails and phone numbers are checked with the very regular expressions the document shows.
//! Trimmed text (identifiers, names, KYC references) is checked by hand, for its clearer error
//! messages; `trimmed_text_pattern` spells the same rule as a pattern and the tests below check
//! that both agree.

use std::sync::OnceLock;

use regex_lite::Regex;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};

/// Characters Rust's `str::trim` removes (Unicode White_Space), as a class body.
const WHITESPACE: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Control characters (`char::is_control`: C0, DEL, C1), as a class body.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Control and whitespace characters together, as a class body.
const CONTROL_OR_WHITESPACE: &str =
    r"\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";

/// A string that, once trimmed, is 1 to `max_chars` characters with no control character:
/// any whitespace, then a first and a last character that are neither whitespace nor control,
/// anything but control characters between them, then any whitespace.
pub fn trimmed_text_pattern(max_chars: usize) -> String {
    let between = max_chars.saturating_sub(2);
    format!(
        "^[{WHITESPACE}]*[^{CONTROL_OR_WHITESPACE}](?:[^{CONTROL}]{{0,{between}}}[^{CONTROL_OR_WHITESPACE}])?[{WHITESPACE}]*$"
    )
}

/// An email as RFC 5322's dot-atom (ASCII letters, digits and ``!#$%&'*+/=?^_`{|}~-``, dots
/// only between them) at a domain of two or more labels of letters, digits and inner hyphens, 63
/// characters at most each (internationalised domains in their `xn--` form). At most
/// [`MAX_EMAIL_CHARS`] characters in all; no surrounding whitespace.
pub const EMAIL_PATTERN: &str = concat!(
    r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*",
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$"
);
/// Longest email, in characters (the identifier limit).
pub const MAX_EMAIL_CHARS: usize = crate::users::MAX_IDENTIFIER_CHARS;
/// E.164: `+`, a country code not starting with 0, at most 15 digits in all.
pub const PHONE_PATTERN: &str = r"^\+[1-9][0-9]{1,14}$";

/// Shortest password, in characters (Unicode code points) as sent, as NIST SP 800-63B counts.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest password, in characters as sent; checked before any work is done on it.
pub const MAX_PASSWORD_CHARS: usize = 1024;
/// Longest first or last name, in characters once trimmed.
pub const MAX_NAME_CHARS: usize = 100;
/// Longest KYC reference, in characters once trimmed.
pub const MAX_KYC_ID_CHARS: usize = 128;

/// `raw` trimmed, if that is 1 to `max_chars` characters with no control character: the rule
/// [`trimmed_text_pattern`] states.
pub fn trimmed_text(raw: &str, max_chars: usize) -> Option<&str> {
    let text = raw.trim();
    let ok = !text.is_empty()
        && text.chars().count() <= max_chars
        && !text.chars().any(char::is_control);
    ok.then_some(text)
}

fn regex(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("a valid pattern"))
}

/// Whether `email` matches [`EMAIL_PATTERN`] and is at most [`MAX_EMAIL_CHARS`] long.
pub fn valid_email(email: &str) -> bool {
    static EMAIL: OnceLock<Regex> = OnceLock::new();
    email.chars().count() <= MAX_EMAIL_CHARS && regex(&EMAIL, EMAIL_PATTERN).is_match(email)
}

/// Whether `phone` matches [`PHONE_PATTERN`].
pub fn valid_phone(phone: &str) -> bool {
    static PHONE: OnceLock<Regex> = OnceLock::new();
    regex(&PHONE, PHONE_PATTERN).is_match(phone)
}

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn trimmed_text_schema(max_chars: usize, description: String) -> Object {
    string()
        .pattern(Some(trimmed_text_pattern(max_chars)))
        .description(Some(description))
        .build()
}

/// A v0 identifier (body and query): see `users::Identifier::parse`.
pub fn identifier_schema() -> Object {
    let max = crate::users::MAX_IDENTIFIER_CHARS;
    trimmed_text_schema(
        max,
        format!(
            "1 to {max} characters once trimmed, no control characters; compared after NFKC \
             and lower-casing (at most 1 KiB in that form)."
        ),
    )
}

/// The admin list's `q`: empty or whitespace (no filter), or an identifier prefix with the
/// identifier's rules.
pub fn prefix_schema() -> Object {
    let max = crate::users::MAX_IDENTIFIER_CHARS;
    string()
        .pattern(Some(format!(
            "^[{WHITESPACE}]*$|{}",
            trimmed_text_pattern(max)
        )))
        .description(Some(format!(
            "An identifier prefix (1 to {max} characters once trimmed, no control characters), \
             compared in the normalised form (case and width folded, `%` and `_` literal); \
             empty means none."
        )))
        .build()
}

/// A v2 first or last name.
pub fn name_schema() -> Object {
    trimmed_text_schema(
        MAX_NAME_CHARS,
        format!("1 to {MAX_NAME_CHARS} characters once trimmed, no control characters."),
    )
}

/// A v2 KYC reference.
pub fn kyc_id_schema() -> Object {
    trimmed_text_schema(
        MAX_KYC_ID_CHARS,
        format!("1 to {MAX_KYC_ID_CHARS} characters once trimmed, no control characters."),
    )
}

/// A v2 login email.
pub fn email_schema() -> Object {
    string()
        .pattern(Some(EMAIL_PATTERN))
        .max_length(Some(MAX_EMAIL_CHARS))
        .description(Some(
            "An ASCII address: dot-atom local part, a domain of two or more labels (IDNs as \
             xn--), at most 254 characters; the user's identifier, shared with v0.",
        ))
        .examples(["ada@example.com"])
        .build()
}

/// A v2 password.
pub fn password_schema() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Password)))
        .min_length(Some(MIN_PASSWORD_CHARS))
        .max_length(Some(MAX_PASSWORD_CHARS))
        .description(Some(
            "8 to 1,024 characters as sent; hashed in its NFKC form, never shown.",
        ))
        .build()
}

/// A v2 phone number.
pub fn phone_schema() -> Object {
    string()
        .pattern(Some(PHONE_PATTERN))
        .description(Some("E.164: `+` and 2 to 15 digits, the first not 0."))
        .examples(["+15551234567"])
        .build()
}

/// A user id (a UUID): any other string is answered like an unknown id.
pub fn uuid_schema() -> Object {
    string()
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::users::Identifier;

    /// Strings around every edge of the trimmed-text rule.
    fn samples() -> Vec<String> {
        let mut samples: Vec<String> = [
            "",
            " ",
            "a",
            " a ",
            "\ta\n",
            "a b",
            "a\u{0}b",
            "\u{1}",
            "a\u{7f}",
            "a\u{85}b",
            "\u{85}a",
            "\u{a0}a\u{3000}",
            "\u{2028}",
            "a\u{200b}",
            "\u{200b}",
            "\u{1c}a",
            "ü",
            "日本",
            "😀",
            "a\u{9f}",
            "\u{a0}",
            "x\u{202f}y",
            "\u{180e}a",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for n in [99, 100, 101, 127, 128, 129, 253, 254, 255] {
            samples.push("x".repeat(n));
            samples.push(format!("  {}  ", "é".repeat(n)));
            samples.push(format!("a{}b", " ".repeat(n - 2)));
        }
        samples
    }

    #[test]
    fn the_trimmed_text_pattern_is_the_trimmed_text_check() {
        for max in [MAX_NAME_CHARS, MAX_KYC_ID_CHARS, 254] {
            let pattern = Regex::new(&trimmed_text_pattern(max)).unwrap();
            for sample in samples() {
                let by_pattern = pattern.is_match(&sample);
                assert_eq!(
                    by_pattern,
                    trimmed_text(&sample, max).is_some(),
                    "{max}: {sample:?}"
                );
                if max == 254 {
                    // The identifier adds only its 1 KiB bound on the normalised form.
                    assert_eq!(by_pattern, Identifier::parse(&sample).is_ok(), "{sample:?}");
                }
            }
        }
    }

    #[test]
    fn emails() {
        for ok in [
            "a@b.co",
            "first.last+tag@example.com",
            "x@sub-domain.example.org",
            "o'hara@xn--bcher-kva.de",
            "UPPER@EXAMPLE.COM",
        ] {
            assert!(valid_email(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@",
            "@b.co",
            "a@b",
            "a b@c.de",
            "a@@b.co",
            ".a@b.co",
            "a.@b.co",
            "a..b@c.de",
            "a@-b.co",
            "a@b-.co",
            "a@b..co",
            "\"a\"@b.co",
            "a@b.c_o",
            "ü@bücher.de",
            " a@b.co",
            "a@b.co\n",
        ] {
            assert!(!valid_email(bad), "{bad:?}");
        }
        let label = "a".repeat(63);
        assert!(valid_email(&format!("x@{label}.co")));
        assert!(!valid_email(&format!("x@{label}a.co")));
        let local = "a".repeat(MAX_EMAIL_CHARS - "@b.co".len());
        assert!(valid_email(&format!("{local}@b.co")));
        assert!(!valid_email(&format!("{local}a@b.co")));
    }

    #[test]
    fn phones() {
        for ok in ["+15551234567", "+442071838750", "+123456789012345", "+12"] {
            assert!(valid_phone(ok), "{ok}");
        }
        for bad in [
            "15551234567",
            "+",
            "+1",
            "+0123",
            "+1234567890123456",
            "+1 555 123",
            "+1-555",
            "+１２３",
            "+15551234567\n",
        ] {
            assert!(!valid_phone(bad), "{bad:?}");
        }
    }
}
