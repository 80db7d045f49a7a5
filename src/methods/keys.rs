//! Device public keys as Cotter's SDKs send them, and the signatures they make.
//!
//! - iOS: P-256 SubjectPublicKeyInfo DER, base64 in 64-character lines; ECDSA/SHA-256 DER
//!   signatures.
//! - Android: X.509 SubjectPublicKeyInfo (P-256, or RSA before API 23), base64 in 76-character
//!   lines; `SHA256withECDSA` / `SHA256withRSA` signatures.
//! - React Native, Flutter: the raw 32-byte Ed25519 key, standard base64; Ed25519 signatures.
//!
//! A key is stored in one canonical form (its DER, or the raw Ed25519 bytes, in standard
//! base64) and named by the SHA-256 of those bytes, so the same key sent with other line breaks
//! or in another base64 alphabet is the same key.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use p256::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Longest key string accepted, in bytes (an RSA-4096 SPKI in base64 with line breaks is
/// about 750).
pub const MAX_KEY_CHARS: usize = 4096;
/// Smallest RSA modulus accepted, in bits.
const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus accepted, in bits (the `rsa` crate's own bound; no SDK makes more).
const MAX_RSA_BITS: usize = 4096;
/// Longest signature accepted, in bytes, decoded (RSA-4096 signs in 512).
const MAX_SIGNATURE_BYTES: usize = 1024;

/// The kinds of device key the SDKs make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// ECDSA on P-256 with SHA-256 (iOS, Android).
    Ec,
    /// RSA PKCS#1 v1.5 with SHA-256 (Android before API 23).
    Rsa,
    /// Ed25519 (React Native, Flutter).
    Ed25519,
}

impl Algorithm {
    /// The name stored and shown: `EC`, `RSA`, `ED25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ec => "EC",
            Algorithm::Rsa => "RSA",
            Algorithm::Ed25519 => "ED25519",
        }
    }

    /// Reads an `algorithm` field (any case): `EC` (also `ECDSA`, `P256`, `ES256`), `RSA`,
    /// `ED25519` (also `EDDSA`).
    pub fn parse(raw: &str) -> Result<Self> {
        match raw.to_ascii_uppercase().as_str() {
            "EC" | "ECDSA" | "P256" | "P-256" | "ES256" => Ok(Algorithm::Ec),
            "RSA" => Ok(Algorithm::Rsa),
            "ED25519" | "EDDSA" => Ok(Algorithm::Ed25519),
            _ => Err(Error::Invalid(
                "algorithm must be EC, RSA or ED25519".into(),
            )),
        }
    }
}

/// A device's public key, checked to be a valid key of its algorithm.
#[derive(Clone)]
pub struct DeviceKey {
    algorithm: Algorithm,
    /// SPKI DER (EC, RSA) or the 32 raw bytes (Ed25519).
    bytes: Vec<u8>,
    inner: Inner,
}

#[derive(Clone)]
enum Inner {
    Ec(p256::ecdsa::VerifyingKey),
    Rsa(Box<rsa::pkcs1v15::VerifyingKey<Sha256>>),
    Ed25519(ed25519_dalek::VerifyingKey),
}

/// Decodes base64 in any of the alphabets the SDKs use (standard or URL-safe, padded or not),
/// after removing white space (line breaks of a PEM-style key).
pub fn decode_base64(raw: &str) -> Option<Vec<u8>> {
    let compact: String = raw.chars().filter(|c| !c.is_whitespace()).collect();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(compact.as_bytes()).ok())
}

fn not_a_key(algorithm: Option<Algorithm>) -> Error {
    let what = match algorithm {
        Some(Algorithm::Ec) => "an EC P-256 public key (SubjectPublicKeyInfo, base64)",
        Some(Algorithm::Rsa) => {
            "an RSA public key of 2048 to 4096 bits (SubjectPublicKeyInfo, base64)"
        }
        Some(Algorithm::Ed25519) => "an Ed25519 public key (32 bytes, base64)",
        None => {
            "a public key: EC P-256 or RSA SubjectPublicKeyInfo, or a raw Ed25519 key, in base64"
        }
    };
    Error::Invalid(format!("code is not {what}"))
}

impl DeviceKey {
    /// Parses a key string as the SDKs send it. With `algorithm` the key must be of that kind;
    /// without, the kind is read from the key itself.
    pub fn parse(code: &str, algorithm: Option<Algorithm>) -> Result<Self> {
        if code.len() > MAX_KEY_CHARS {
            return Err(Error::Invalid(format!(
                "code must be at most {MAX_KEY_CHARS} characters"
            )));
        }
        let bytes = decode_base64(code).ok_or_else(|| not_a_key(algorithm))?;
        let key = match algorithm {
            Some(kind) => Self::of_kind(kind, &bytes),
            None => [Algorithm::Ed25519, Algorithm::Ec, Algorithm::Rsa]
                .into_iter()
                .find_map(|kind| Self::of_kind(kind, &bytes)),
        };
        key.ok_or_else(|| not_a_key(algorithm))
    }

    /// Reads a key this server stored (its canonical form).
    pub fn from_stored(algorithm: &str, public_key: &str) -> Result<Self> {
        let kind = Algorithm::parse(algorithm)
            .map_err(|_| Error::Internal(format!("stored key algorithm {algorithm:?}")))?;
        Self::parse(public_key, Some(kind))
            .map_err(|_| Error::Internal("a stored device key does not parse".into()))
    }

    fn of_kind(kind: Algorithm, bytes: &[u8]) -> Option<Self> {
        match kind {
            Algorithm::Ed25519 => {
                let raw: [u8; 32] = match bytes.len() {
                    32 => bytes.try_into().ok()?,
                    // The same key wrapped in a SubjectPublicKeyInfo.
                    _ => ed25519_dalek::VerifyingKey::from_public_key_der(bytes)
                        .ok()?
                        .to_bytes(),
                };
                let key = ed25519_dalek::VerifyingKey::from_bytes(&raw).ok()?;
                // A small-order key would accept signatures anyone can make.
                (!key.is_weak()).then(|| DeviceKey {
                    algorithm: kind,
                    bytes: raw.to_vec(),
                    inner: Inner::Ed25519(key),
                })
            }
            Algorithm::Ec => {
                let key = p256::PublicKey::from_public_key_der(bytes).ok()?;
                let der = key.to_public_key_der().ok()?.into_vec();
                Some(DeviceKey {
                    algorithm: kind,
                    bytes: der,
                    inner: Inner::Ec(p256::ecdsa::VerifyingKey::from(key)),
                })
            }
            Algorithm::Rsa => {
                let key = rsa::RsaPublicKey::from_public_key_der(bytes).ok()?;
                let bits = key.n().bits();
                if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                    return None;
                }
                let der = key.to_public_key_der().ok()?.into_vec();
                Some(DeviceKey {
                    algorithm: kind,
                    bytes: der,
                    inner: Inner::Rsa(Box::new(rsa::pkcs1v15::VerifyingKey::new(key))),
                })
            }
        }
    }

    /// The key's kind.
    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    /// The canonical form stored: standard base64 of the DER or raw bytes.
    pub fn canonical(&self) -> String {
        STANDARD.encode(&self.bytes)
    }

    /// The key's name in the methods table: SHA-256 of its canonical bytes, in hex.
    pub fn hash(&self) -> String {
        hex::encode(Sha256::digest(&self.bytes))
    }

    /// Whether `signature` (base64, any alphabet) is this key's signature of `message`.
    pub fn verifies(&self, message: &[u8], signature: &str) -> bool {
        let Some(sig) = decode_base64(signature) else {
            return false;
        };
        if sig.is_empty() || sig.len() > MAX_SIGNATURE_BYTES {
            return false;
        }
        match &self.inner {
            Inner::Ec(key) => {
                use p256::ecdsa::signature::Verifier;
                // DER as the SDKs send it; the fixed 64-byte form too.
                let parsed = p256::ecdsa::Signature::from_der(&sig)
                    .or_else(|_| p256::ecdsa::Signature::from_slice(&sig));
                parsed.is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Inner::Rsa(key) => {
                use rsa::signature::Verifier;
                rsa::pkcs1v15::Signature::try_from(sig.as_slice())
                    .is_ok_and(|sig| key.verify(message, &sig).is_ok())
            }
            Inner::Ed25519(key) => ed25519_dalek::Signature::from_slice(&sig)
                .is_ok_and(|sig| key.verify_strict(message, &sig).is_ok()),
        }
    }
}

/// Reads the `encKey` of an enrollment check: base64 (any alphabet the SDKs use; a `+` that
/// arrived as a space is put back) of the UTF-8 key string, itself base64. A value that is
/// not double-encoded is read as the key string itself.
pub fn key_from_enc_key(enc_key: &str) -> Result<DeviceKey> {
    let restored = enc_key.trim().replace(' ', "+");
    let inner = decode_base64(&restored)
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| DeviceKey::parse(&text, None).ok());
    match inner {
        Some(key) => Ok(key),
        None => DeviceKey::parse(&restored, None).map_err(|_| {
            Error::Invalid(
                "the key is not base64 of a public key string (EC P-256, RSA or Ed25519)".into(),
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer as _;

    #[test]
    fn ed25519_keys_in_every_alphabet_are_one_key() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32]);
        let raw = signing.verifying_key().to_bytes();
        let std = STANDARD.encode(raw);
        let key = DeviceKey::parse(&std, Some(Algorithm::Ed25519)).unwrap();
        assert_eq!(key.algorithm(), Algorithm::Ed25519);
        for form in [
            URL_SAFE.encode(raw),
            URL_SAFE_NO_PAD.encode(raw),
            format!("{std}\n"),
        ] {
            assert_eq!(DeviceKey::parse(&form, None).unwrap().hash(), key.hash());
        }
        let sig = signing.sign(b"message");
        assert!(key.verifies(b"message", &STANDARD.encode(sig.to_bytes())));
        assert!(!key.verifies(b"messagf", &STANDARD.encode(sig.to_bytes())));
        assert!(!key.verifies(b"message", "not base64!"));
        // The wrong kind for the bytes.
        assert!(DeviceKey::parse(&std, Some(Algorithm::Ec)).is_err());
        // A small-order point is refused.
        let mut weak = [0u8; 32];
        weak[0] = 1;
        assert!(DeviceKey::parse(&STANDARD.encode(weak), Some(Algorithm::Ed25519)).is_err());
    }

    #[test]
    fn p256_spki_with_line_breaks_parses_and_verifies_der_signatures() {
        use p256::ecdsa::signature::Signer;
        let signing = p256::ecdsa::SigningKey::from_slice(&[3u8; 32]).unwrap();
        let der = p256::PublicKey::from(signing.verifying_key())
            .to_public_key_der()
            .unwrap()
            .into_vec();
        let b64 = STANDARD.encode(&der);
        let ios: String = b64
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        let key = DeviceKey::parse(&ios, Some(Algorithm::Ec)).unwrap();
        assert_eq!(key.canonical(), b64);
        let sig: p256::ecdsa::Signature = signing.sign(b"hello");
        assert!(key.verifies(b"hello", &STANDARD.encode(sig.to_der().as_bytes())));
        assert!(!key.verifies(b"hellp", &STANDARD.encode(sig.to_der().as_bytes())));
        assert!(DeviceKey::parse(&ios, None).is_ok());
        assert!(DeviceKey::parse("AAAA", Some(Algorithm::Ec)).is_err());
    }

    #[test]
    fn enc_keys_are_read_in_every_alphabet() {
        let signing = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
        let key_string = STANDARD.encode(signing.verifying_key().to_bytes());
        let want = DeviceKey::parse(&key_string, None).unwrap().hash();
        for enc in [
            STANDARD.encode(&key_string),
            STANDARD_NO_PAD.encode(&key_string),
            URL_SAFE.encode(&key_string),
            URL_SAFE_NO_PAD.encode(&key_string),
            STANDARD.encode(&key_string).replace('+', " "),
            key_string.clone(),
        ] {
            assert_eq!(key_from_enc_key(&enc).unwrap().hash(), want, "{enc}");
        }
        assert!(key_from_enc_key("!!!").is_err());
    }

    #[test]
    fn algorithms_are_named_as_the_sdks_name_them() {
        assert_eq!(Algorithm::parse("ec").unwrap(), Algorithm::Ec);
        assert_eq!(Algorithm::parse("ED25519").unwrap(), Algorithm::Ed25519);
        assert_eq!(Algorithm::parse("RSA").unwrap(), Algorithm::Rsa);
        assert!(Algorithm::parse("DSA").is_err());
    }
}
