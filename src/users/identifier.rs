//! Identifiers: how they are checked, and the form in which two of them are the same user.

use unicode_normalization::UnicodeNormalization;

use crate::error::{Error, Result};

/// Longest identifier accepted, in characters, after trimming.
pub const MAX_IDENTIFIER_CHARS: usize = 254;
/// Longest normalised identifier, in bytes. NFKC can expand a character up to 18-fold; this
/// keeps such identifiers inside what a database index key holds.
const MAX_NORMALIZED_BYTES: usize = 1024;

/// The form two identifiers are compared in: Unicode NFKC, lower case, NFKC again (lower-casing
/// can leave a string that NFKC would change), so that `Hello@Example.com` and
/// `ｈｅｌｌｏ@example.com` are one user.
pub fn normalize_identifier(identifier: &str) -> String {
    let folded: String = identifier.nfkc().collect::<String>().to_lowercase();
    folded.nfkc().collect()
}

/// An identifier that passed validation, with its normalised form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identifier {
    pub given: String,
    pub normalized: String,
}

impl Identifier {
    /// Trims the identifier and checks it: 1 to 254 characters, no control characters.
    pub fn parse(raw: &str) -> Result<Self> {
        let given = raw.trim();
        if given.is_empty() {
            return Err(Error::Invalid("identifier must not be empty".into()));
        }
        if given.chars().count() > MAX_IDENTIFIER_CHARS {
            return Err(Error::Invalid(format!(
                "identifier must be at most {MAX_IDENTIFIER_CHARS} characters"
            )));
        }
        if given.chars().any(char::is_control) {
            return Err(Error::Invalid(
                "identifier must not contain control characters".into(),
            ));
        }
        let normalized = normalize_identifier(given);
        if normalized.len() > MAX_NORMALIZED_BYTES {
            return Err(Error::Invalid(
                "identifier is too long once normalised".into(),
            ));
        }
        Ok(Identifier {
            given: given.to_owned(),
            normalized,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_trimmed_and_checked() {
        let id = Identifier::parse("  Hello@Gmail.com \n").unwrap();
        assert_eq!(id.given, "Hello@Gmail.com");
        assert_eq!(id.normalized, "hello@gmail.com");
        assert!(Identifier::parse("   ").is_err());
        assert!(Identifier::parse("a\u{0}b").is_err());
        assert!(Identifier::parse("a\u{7}b").is_err());
        assert!(Identifier::parse(&"é".repeat(254)).is_ok());
        assert!(Identifier::parse(&"é".repeat(255)).is_err());
    }

    #[test]
    fn normalisation_folds_width_and_case() {
        assert_eq!(
            normalize_identifier("ＨＥＬＬＯ@Example.COM"),
            "hello@example.com"
        );
        assert_eq!(normalize_identifier("ﬁle"), "file");
        let once = normalize_identifier("İstanbul ǅ Ⅻ");
        assert_eq!(normalize_identifier(&once), once);
    }

    #[test]
    fn expanding_identifiers_are_bounded() {
        // U+FDFA expands to 18 characters under NFKC.
        assert!(Identifier::parse(&"\u{FDFA}".repeat(200)).is_err());
    }
}
