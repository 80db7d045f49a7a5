//! Password hashing with argon2id (OWASP parameters: 19 MiB, t=2, p=1), with bounded
//! concurrency so that a burst of sign-ups cannot pile up threads and memory or starve reads.
//!
//! Checks also accept the hashes other systems wrote, which an import stores as given
//! ([`imported_scheme`]): argon2 in any variant, bcrypt (`$2a$`, `$2b$`, `$2y$`) and PBKDF2-SHA256
//! in PHC form. Such a hash is stale: the first right check replaces it with argon2id.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use rand::RngCore;
use unicode_normalization::UnicodeNormalization;

use crate::config::Settings;
use crate::error::{Error, Result};

/// Memory cost in KiB (19 MiB), iterations and lanes, as OWASP recommends for argon2id.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

fn params(output_len: Option<usize>) -> Result<Params> {
    Params::new(MEMORY_KIB, ITERATIONS, LANES, output_len)
        .map_err(|e| Error::Internal(format!("argon2 parameters: {e}")))
}

/// Most memory a stored hash may ask for to be checked, in KiB (an imported hash asking for
/// more is not run: it could not match anything without exhausting the server).
const MAX_CHECK_KIB: u32 = 256 * 1024;

thread_local! {
    /// Each hashing thread's argon2 memory, kept between hashes: allocating and freeing 19 MiB
    /// per hash left the allocator holding much more than that.
    static BLOCKS: std::cell::RefCell<Vec<Block>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs argon2 into `out`, in this thread's kept memory when the parameters are the server's
/// (or smaller), else in memory of its own for this run.
fn argon2_into(
    algorithm: Algorithm,
    version: Version,
    params: Params,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> std::result::Result<(), argon2::Error> {
    let needed = params.block_count();
    let argon2 = Argon2::new(algorithm, version, params);
    let kept = (MEMORY_KIB as usize).max(needed);
    if kept > MEMORY_KIB as usize {
        let mut own = vec![Block::new(); needed];
        return argon2.hash_password_into_with_memory(password, salt, out, &mut own[..]);
    }
    BLOCKS.with(|blocks| {
        let mut blocks = blocks.borrow_mut();
        if blocks.len() < kept {
            blocks.resize(kept, Block::new());
        }
        argon2.hash_password_into_with_memory(password, salt, out, &mut blocks[..needed])
    })
}

/// The form a password is hashed in: Unicode NFKC, so that the same password typed on two
/// keyboards (composed or decomposed accents, full-width digits) is the same password.
pub fn normalize(password: &str) -> String {
    password.nfkc().collect()
}

/// Hashes a normalised password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`) with a
/// fresh 128-bit salt. Slow by design: call it through [`Hasher::hash`].
pub fn hash_now(password: &str) -> Result<String> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    argon2_into(
        Algorithm::Argon2id,
        Version::V0x13,
        params(Some(out.len()))?,
        password.as_bytes(),
        &salt,
        &mut out,
    )
    .map_err(|e| Error::Internal(format!("cannot hash a password: {e}")))?;
    let salt = SaltString::encode_b64(&salt)
        .map_err(|e| Error::Internal(format!("cannot encode a salt: {e}")))?;
    let out =
        Output::new(&out).map_err(|e| Error::Internal(format!("cannot encode a hash: {e}")))?;
    Ok(format!(
        "${}$v={}$m={MEMORY_KIB},t={ITERATIONS},p={LANES}${}${out}",
        Algorithm::Argon2id.ident(),
        u32::from(Version::V0x13),
        salt.as_str()
    ))
}

/// Whether `password` matches a stored hash: normalised as at creation, or as given (another
/// system's hash was made from the password as typed).
pub fn verify(password: &str, phc: &str) -> bool {
    let normalized = normalize(password);
    verify_normalized(&normalized, phc)
        || (normalized != password && verify_normalized(password, phc))
}

/// A slow job for a hashing thread.
type Job = Box<dyn FnOnce() + Send>;

/// Runs hashes at most `concurrency` at a time, with at most `queue` more waiting; past that a
/// request is refused at once with 503 and `Retry-After` instead of waiting.
///
/// The hashes run on `concurrency` threads of the hasher's own, not on the shared blocking
/// pool: each argon2 run takes 19 MiB, and the allocator keeps such memory per thread, so
/// spreading hashes over the blocking pool's many threads grew the server to a gigabyte under a
/// stream of PIN checks, where a few threads of its own keep it to a few such buffers.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::Sender<Job>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    running: Arc<AtomicUsize>,
    peak_running: Arc<AtomicUsize>,
    capacity: usize,
}

/// Counts one hash in `counter` for as long as it lives, recording the highest count in `peak`.
/// It is moved into the blocking job, so the count stays right even if the request that started
/// the job goes away while the hash runs.
struct Counted {
    counter: Arc<AtomicUsize>,
}

impl Counted {
    fn enter(counter: &Arc<AtomicUsize>, peak: &AtomicUsize) -> Self {
        let now = counter.fetch_add(1, Ordering::AcqRel) + 1;
        peak.fetch_max(now, Ordering::AcqRel);
        Counted {
            counter: counter.clone(),
        }
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.counter.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Hasher {
    /// A hasher sized by `settings` (`HASH_CONCURRENCY`, `HASH_QUEUE`), with its threads
    /// (they end when the last clone of the hasher is dropped).
    pub fn new(settings: &Settings) -> Self {
        let concurrency = settings.hash_concurrency();
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(std::sync::Mutex::new(queue));
        for n in 0..concurrency {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("cotterd-hash-{n}"))
                .spawn(move || loop {
                    // The lock is held only while waiting for the next job.
                    let next = match queue.lock() {
                        Ok(queue) => queue.recv(),
                        Err(_) => return,
                    };
                    let Ok(job) = next else { return };
                    // A job that panics loses its answer (the caller sees an internal error),
                    // not the thread.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                })
                .expect("the hashing threads start");
        }
        Hasher {
            jobs,
            in_flight: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            running: Arc::new(AtomicUsize::new(0)),
            peak_running: Arc::new(AtomicUsize::new(0)),
            capacity: concurrency + usize::try_from(settings.hash_queue).unwrap_or(usize::MAX),
        }
    }

    /// Hashes running or waiting now.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// The most hashes that were ever running or waiting at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Hashes running now.
    pub fn running(&self) -> usize {
        self.running.load(Ordering::Acquire)
    }

    /// The most hashes that ever ran at once (never more than `HASH_CONCURRENCY`).
    pub fn peak_running(&self) -> usize {
        self.peak_running.load(Ordering::Acquire)
    }

    /// Running plus waiting hashes allowed at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Normalises and hashes a password on the blocking pool, waiting for a free hashing slot;
    /// `Error::Unavailable` when the queue is full.
    pub async fn hash(&self, password: &str) -> Result<String> {
        let password = normalize(password);
        self.run(move || hash_now(&password)).await?
    }

    /// Checks a password (or PIN) against a stored PHC string through the same queue, so that
    /// checks are bounded as hashes are. With no stored hash (an unknown user) it does the same
    /// work against a dummy hash and answers no, so that the two cannot be told apart by time.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> Result<Check> {
        let password = password.to_owned();
        self.run(move || match phc {
            Some(phc) => {
                let matches = verify(&password, &phc);
                Check {
                    matches,
                    stale: matches && needs_rehash(&phc),
                }
            }
            None => {
                // As much work as a known user's check: twice when the password is not in its
                // normalised form (see `verify`).
                let normalized = normalize(&password);
                verify_normalized(&normalized, dummy_hash());
                if normalized != password {
                    verify_normalized(&password, dummy_hash());
                }
                Check {
                    matches: false,
                    stale: false,
                }
            }
        })
        .await
    }

    /// Runs one slow job on a hashing thread; `Unavailable` when the queue is full.
    async fn run<T: Send + 'static>(&self, job: impl FnOnce() -> T + Send + 'static) -> Result<T> {
        let taken = self
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        let Ok(before) = taken else {
            log::warn!("password hashing queue is full ({} places)", self.capacity);
            return Err(Error::Unavailable);
        };
        // The place is already counted; this guard gives it back when the job is done (or
        // dropped unrun), not when the request is.
        let place = Counted {
            counter: self.in_flight.clone(),
        };
        self.peak.fetch_max(before + 1, Ordering::AcqRel);
        let (running, peak_running) = (self.running.clone(), self.peak_running.clone());
        let (answer, answered) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // Dropped in this order: the job counts as running no more before its place is free.
            let _held = (Counted::enter(&running, &peak_running), place);
            let _ = answer.send(job());
        });
        self.jobs
            .send(job)
            .map_err(|_| Error::Internal("the hashing threads stopped".into()))?;
        answered
            .await
            .map_err(|_| Error::Internal("a hashing job failed".into()))
    }
}

/// What a check found: whether the secret matches, and whether its stored hash should be
/// replaced by one in the current scheme and parameters (`stale`, only when it matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    pub matches: bool,
    pub stale: bool,
}

/// The password hash schemes a stored hash may be in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// argon2id, argon2i or argon2d in PHC form (what this server writes is argon2id).
    Argon2,
    /// bcrypt: `$2a$`, `$2b$` or `$2y$`, cost and 53 characters of salt and hash.
    Bcrypt,
    /// PBKDF2 with HMAC-SHA256 in PHC form: `$pbkdf2-sha256$i=…,l=…$salt$hash`.
    Pbkdf2Sha256,
}

/// Highest bcrypt cost an imported hash may have (a check at cost 14 takes about a second).
pub const MAX_BCRYPT_COST: u32 = 14;
/// Most PBKDF2 iterations an imported hash may ask for (OWASP asks 600,000 for SHA-256).
pub const MAX_PBKDF2_ROUNDS: u32 = 2_000_000;
/// Longest PBKDF2 output (two SHA-256 blocks, each costing the rounds again).
const MAX_PBKDF2_BYTES: usize = 64;
/// Most argon2 work a stored hash may ask for, in KiB times passes (256 MiB four times): the
/// memory cap alone would let a hash with billions of passes hold a hashing thread for good.
const MAX_ARGON2_WORK: u64 = 256 * 1024 * 4;

/// The scheme of a hash another system wrote, if this server can check it within its limits;
/// otherwise why not (for an import's per-record answer). Never echoes the hash.
pub fn imported_scheme(hash: &str) -> std::result::Result<Scheme, String> {
    if hash.starts_with("$2") {
        let bytes = hash.as_bytes();
        let well_formed = hash.len() == 60
            && matches!(&bytes[..4], b"$2a$" | b"$2b$" | b"$2y$")
            && bytes[4].is_ascii_digit()
            && bytes[5].is_ascii_digit()
            && bytes[6] == b'$'
            && bytes[7..]
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'.' || *b == b'/');
        if !well_formed {
            return Err(
                "a bcrypt hash is $2a$, $2b$ or $2y$, a two-digit cost, $ and 53 characters".into(),
            );
        }
        let cost = u32::from(bytes[4] - b'0') * 10 + u32::from(bytes[5] - b'0');
        if !(4..=MAX_BCRYPT_COST).contains(&cost) {
            return Err(format!("bcrypt cost must be 4 to {MAX_BCRYPT_COST}"));
        }
        return Ok(Scheme::Bcrypt);
    }
    let parsed = PasswordHash::new(hash)
        .map_err(|_| "the password hash is neither a PHC string nor bcrypt".to_owned())?;
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("the password hash has no salt or no hash".into());
    }
    if parsed.algorithm == pbkdf2::Algorithm::Pbkdf2Sha256.ident() {
        let params = pbkdf2::Params::try_from(&parsed)
            .map_err(|_| "the PBKDF2 parameters are not i=ROUNDS,l=LENGTH".to_owned())?;
        if params.rounds > MAX_PBKDF2_ROUNDS || params.rounds == 0 {
            return Err(format!("PBKDF2 rounds must be 1 to {MAX_PBKDF2_ROUNDS}"));
        }
        if params.output_length > MAX_PBKDF2_BYTES {
            return Err(format!(
                "a PBKDF2 hash must be at most {MAX_PBKDF2_BYTES} bytes"
            ));
        }
        return Ok(Scheme::Pbkdf2Sha256);
    }
    if Algorithm::try_from(parsed.algorithm).is_ok() {
        let params = Params::try_from(&parsed)
            .map_err(|_| "the argon2 parameters are not m=…,t=…,p=…".to_owned())?;
        if !argon2_within_limits(&params) {
            return Err(format!(
                "argon2 must use at most {MAX_CHECK_KIB} KiB, and memory times passes at most \
                 {MAX_ARGON2_WORK} KiB, to be checked"
            ));
        }
        if let Some(version) = parsed.version {
            Version::try_from(version).map_err(|_| "unknown argon2 version".to_owned())?;
        }
        return Ok(Scheme::Argon2);
    }
    Err(format!(
        "password hash scheme {:?} is not supported: argon2, bcrypt ($2a$, $2b$, $2y$) and \
         pbkdf2-sha256 are",
        parsed.algorithm.as_str()
    ))
}

/// Whether a secret matches a stored hash of any scheme [`imported_scheme`] accepts, with the
/// hash's own parameters, compared in constant time. A hash outside the limits never matches.
fn verify_normalized(password: &str, stored: &str) -> bool {
    match imported_scheme(stored) {
        Ok(Scheme::Argon2) => verify_argon2(password, stored),
        // The crate compares in constant time; like bcrypt everywhere, it reads the first 72
        // bytes of the password.
        Ok(Scheme::Bcrypt) => bcrypt::verify(password, stored).unwrap_or(false),
        Ok(Scheme::Pbkdf2Sha256) => PasswordHash::new(stored).is_ok_and(|hash| {
            argon2::password_hash::PasswordVerifier::verify_password(
                &pbkdf2::Pbkdf2,
                password.as_bytes(),
                &hash,
            )
            .is_ok()
        }),
        Err(_) => false,
    }
}

/// Whether argon2 parameters ask for no more memory and work than a check may take.
fn argon2_within_limits(params: &Params) -> bool {
    params.m_cost() <= MAX_CHECK_KIB
        && u64::from(params.m_cost()) * u64::from(params.t_cost()) <= MAX_ARGON2_WORK
}

/// Whether a secret matches an argon2 PHC string of any variant, version and parameters.
fn verify_argon2(password: &str, phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return false;
    };
    let (Ok(algorithm), Some(expected), Some(salt)) =
        (Algorithm::try_from(hash.algorithm), hash.hash, hash.salt)
    else {
        return false;
    };
    let version = match hash.version.map(Version::try_from).transpose() {
        Ok(version) => version.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&hash) else {
        return false;
    };
    if !argon2_within_limits(&params) {
        return false;
    }
    let mut salt_bytes = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_bytes) else {
        return false;
    };
    let mut out = vec![0u8; expected.len()];
    if argon2_into(
        algorithm,
        version,
        params,
        password.as_bytes(),
        salt,
        &mut out,
    )
    .is_err()
    {
        return false;
    }
    subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into()
}

/// Whether a stored hash is in another scheme, version or parameters than [`hash_now`] writes.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(hash) = PasswordHash::new(phc) else {
        return true;
    };
    let current = Params::try_from(&hash)
        .ok()
        .map(|p| (p.m_cost(), p.t_cost(), p.p_cost()));
    hash.algorithm != Algorithm::Argon2id.ident()
        || hash.version != Some(Version::V0x13.into())
        || current != Some((MEMORY_KIB, ITERATIONS, LANES))
}

/// A hash of nothing anyone knows, in the current parameters: what an unknown user's check is
/// run against.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::rng().fill_bytes(&mut secret);
        hash_now(&hex::encode(secret)).unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::{PasswordHasher, PasswordVerifier};

    #[test]
    fn hashes_agree_with_the_argon2_crates_own() {
        let ours = hash_now("pw").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"pw", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"px", &parsed).is_err());
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = Argon2::default()
            .hash_password(b"pw", &salt)
            .unwrap()
            .to_string();
        assert!(verify("pw", &theirs));
        assert!(!verify("px", &theirs));
        // Memory beyond what a check may use is not run.
        let huge = theirs.replace("m=19456", "m=4194304");
        assert!(!verify("pw", &huge));
    }

    #[test]
    fn hashes_are_argon2id_with_owasp_parameters() {
        let phc = hash_now("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(!phc.contains("correct horse"));
        assert!(verify("correct horse battery", &phc));
        assert!(!verify("correct horse battery!", &phc));
        assert_ne!(phc, hash_now("correct horse battery").unwrap(), "salted");
    }

    #[test]
    fn verification_normalises_like_hashing() {
        let phc = hash_now(&normalize("ｐａｓｓｗｏｒｄ１２")).unwrap();
        assert!(verify("password12", &phc));
        assert!(!verify("garbage", "not a phc string"));
    }

    #[test]
    fn hashes_in_other_variants_or_parameters_verify_and_are_stale() {
        let current = hash_now("pw").unwrap();
        assert!(!needs_rehash(&current));
        let params = Params::new(4096, 3, 1, None).unwrap();
        for algorithm in [Algorithm::Argon2i, Algorithm::Argon2d, Algorithm::Argon2id] {
            let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
            let old = Argon2::new(algorithm, Version::V0x13, params.clone())
                .hash_password(b"pw", &salt)
                .unwrap()
                .to_string();
            assert!(verify("pw", &old), "{old}");
            assert!(!verify("px", &old));
            assert!(needs_rehash(&old), "{old}");
        }
        assert!(needs_rehash("$2b$12$notargon"));
    }

    #[test]
    fn bcrypt_and_pbkdf2_hashes_verify_and_are_stale() {
        let bcrypt = bcrypt::hash("hunter2 ok", 4).unwrap();
        assert_eq!(imported_scheme(&bcrypt), Ok(Scheme::Bcrypt));
        assert!(verify("hunter2 ok", &bcrypt));
        assert!(!verify("hunter2 no", &bcrypt));
        assert!(needs_rehash(&bcrypt));
        for prefix in ["$2a$", "$2y$"] {
            let other = bcrypt.replacen("$2b$", prefix, 1);
            assert!(verify("hunter2 ok", &other), "{other}");
        }
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let pbkdf2 = pbkdf2::Pbkdf2
            .hash_password_customized(
                b"hunter2 ok",
                Some(pbkdf2::Algorithm::Pbkdf2Sha256.ident()),
                None,
                pbkdf2::Params {
                    rounds: 1_000,
                    output_length: 32,
                },
                &salt,
            )
            .unwrap()
            .to_string();
        assert_eq!(imported_scheme(&pbkdf2), Ok(Scheme::Pbkdf2Sha256));
        assert!(verify("hunter2 ok", &pbkdf2));
        assert!(!verify("hunter2 no", &pbkdf2));
        assert!(needs_rehash(&pbkdf2));
    }

    #[test]
    fn hashes_outside_the_schemes_or_limits_are_refused() {
        let bcrypt = bcrypt::hash("pw", 4).unwrap();
        for bad in [
            "5f4dcc3b5aa765d61d8327deb882cf99".to_owned(),
            "$1$abc$def".to_owned(),
            "$pbkdf2-sha512$i=1000,l=64$c2FsdA$aGFzaA".to_owned(),
            "$scrypt$ln=16,r=8,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
            bcrypt.replacen("$04$", "$31$", 1),
            bcrypt.replacen("$2b$", "$2x$", 1),
            bcrypt[..50].to_owned(),
            "$argon2id$v=19$m=4194304,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
            "$pbkdf2-sha256$i=99000000,l=32$c2FsdA$aGFzaA".to_owned(),
            "$pbkdf2-sha256$i=1000,l=128$c2FsdA$aGFzaA".to_owned(),
            "$argon2id$v=19$m=65536,t=4000000000,p=1$c2FsdHNhbHQ$aGFzaGhhc2g".to_owned(),
            format!("$2a\u{e9}{}", "a".repeat(55)),
        ] {
            assert!(imported_scheme(&bad).is_err(), "{bad}");
            assert!(!verify("pw", &bad));
        }
    }

    #[test]
    fn a_password_checks_in_the_form_it_was_hashed_in() {
        // Another system hashed the decomposed form as typed.
        let typed = "cafe\u{301} au lait";
        let theirs = bcrypt::hash(typed, 4).unwrap();
        assert!(verify(typed, &theirs));
        // This server hashes the normalised form; either spelling checks.
        let ours = hash_now(&normalize(typed)).unwrap();
        assert!(verify(typed, &ours));
        assert!(verify("caf\u{e9} au lait", &ours));
    }
}
