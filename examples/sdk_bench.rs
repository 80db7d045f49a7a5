//! The SDK calls' side of `bench/run`: the bare verification rates that bound
//! `POST /api/v0/event/create`, the device keys the bench enrolls, and signed event bodies.
//!
//! ```text
//! cargo build --release --example sdk_bench
//! target/release/examples/sdk_bench limit --threads 2 --seconds 5
//! target/release/examples/sdk_bench keys
//! target/release/examples/sdk_bench bodies --algorithm ed25519 --user U --key-id K --count 1000 --out FILE
//! ```
//!
//! - `limit`: argon2id verifications of a PIN against a hash made by the server's own
//!   `cotterd::passwords::hash_now` (so its parameters), Ed25519 `verify_strict` and P-256
//!   ECDSA/SHA-256 verifications of DER signatures, each kind for `--seconds` on `--threads`
//!   threads (`--argon2-threads` for argon2, default the same); one JSON object of per-second
//!   rates. Keys are parsed once: what is timed is the signature's parse and its check.
//! - `keys`: the two public keys the bench enrolls, from fixed seeds: Ed25519 raw (standard
//!   base64) and P-256 SubjectPublicKeyInfo DER (standard base64), as JSON.
//! - `bodies`: `--count` event bodies, one JSON object a line, each a valid signed
//!   TRUSTED_DEVICE approval of event `LOGIN_<i>` (`i` from `--first`) with the current unix
//!   time: every message differs, so that none is refused as a replay.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use clap::{Parser, Subcommand, ValueEnum};
use ed25519_dalek::Signer as _;
use p256::ecdsa::signature::Verifier as _;
use p256::pkcs8::EncodePublicKey as _;
use serde_json::json;

/// The PIN `limit` checks (the one bench/run enrolls).
const PIN: &str = "135790";
/// Seeds of the bench's device keys.
const ED25519_SEED: [u8; 32] = [0x5e; 32];
const P256_SEED: [u8; 32] = [0x2a; 32];
/// Distinct signed messages each signature kind cycles through in `limit`.
const MESSAGES: usize = 256;
/// The method of the signed approvals (`bodies`).
const METHOD: &str = "TRUSTED_DEVICE";

#[derive(Parser)]
#[command(about = "Bare verification rates, device keys and signed event bodies for bench/run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Bare argon2id, Ed25519 and P-256 verification rates (JSON).
    Limit {
        /// Threads verifying Ed25519 and P-256 signatures (and argon2 by default).
        #[arg(long)]
        threads: usize,
        /// Threads verifying argon2 hashes (the server's HASH_CONCURRENCY); default --threads.
        #[arg(long)]
        argon2_threads: Option<usize>,
        /// Seconds per kind.
        #[arg(long, default_value_t = 5.0)]
        seconds: f64,
    },
    /// The two public keys, from fixed seeds (JSON).
    Keys,
    /// Signed event bodies, one JSON object a line.
    Bodies {
        #[arg(long, value_enum)]
        algorithm: Kind,
        /// The user as the body names it (`client_user_id`), and as the message starts.
        #[arg(long)]
        user: String,
        /// The project's API_KEY_ID.
        #[arg(long)]
        key_id: String,
        #[arg(long)]
        count: usize,
        /// The first event's number (`LOGIN_<first>`).
        #[arg(long, default_value_t = 0)]
        first: usize,
        #[arg(long)]
        out: String,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Ed25519,
    P256,
}

fn ed25519_key() -> ed25519_dalek::SigningKey {
    ed25519_dalek::SigningKey::from_bytes(&ED25519_SEED)
}

fn p256_key() -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&P256_SEED).expect("a valid P-256 scalar")
}

/// The key strings as the SDKs enroll them: raw Ed25519, P-256 SubjectPublicKeyInfo DER.
fn public_keys() -> (String, String) {
    let ed = STANDARD.encode(ed25519_key().verifying_key().to_bytes());
    let der = p256::PublicKey::from(p256_key().verifying_key())
        .to_public_key_der()
        .expect("a P-256 key encodes");
    (ed, STANDARD.encode(der.as_bytes()))
}

/// The bench's two signing keys.
struct Keys {
    ed25519: ed25519_dalek::SigningKey,
    p256: p256::ecdsa::SigningKey,
}

impl Keys {
    fn new() -> Self {
        Keys {
            ed25519: ed25519_key(),
            p256: p256_key(),
        }
    }

    /// A signature's bytes: Ed25519's 64, or P-256's DER.
    fn sign(&self, kind: Kind, message: &[u8]) -> Vec<u8> {
        match kind {
            Kind::Ed25519 => self.ed25519.sign(message).to_bytes().to_vec(),
            Kind::P256 => {
                let sig: p256::ecdsa::Signature = self.p256.sign(message);
                sig.to_der().as_bytes().to_vec()
            }
        }
    }
}

/// Runs `op(i)` on `threads` threads for `seconds`; operations per second (all threads).
fn rate(threads: usize, seconds: f64, op: impl Fn(usize) -> bool + Sync) -> Result<f64, String> {
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let counts: Vec<Result<u64, String>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let (stop, op) = (&stop, &op);
                scope.spawn(move || {
                    let mut done = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        if !op(t * 7919 + done as usize) {
                            return Err("a verification failed".to_owned());
                        }
                        done += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        thread::sleep(Duration::from_secs_f64(seconds));
        stop.store(true, Ordering::Relaxed);
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect()
    });
    let elapsed = started.elapsed().as_secs_f64();
    let total = counts.into_iter().sum::<Result<u64, String>>()?;
    Ok(total as f64 / elapsed)
}

/// A message shaped like the server's: user + API_KEY_ID + event + timestamp + method + approved.
fn sample_message(i: usize) -> Vec<u8> {
    format!("sdk-bench-user6f1c2b8e-5d0a-4f6e-9a57-2b1d3c4e5f60LOGIN_{i}1700000000{METHOD}true")
        .into_bytes()
}

fn limit(threads: usize, argon2_threads: usize, seconds: f64) -> Result<serde_json::Value, String> {
    if threads == 0 || argon2_threads == 0 || seconds <= 0.0 {
        return Err("threads and seconds must be above 0".into());
    }
    let phc = cotterd::passwords::hash_now(PIN).map_err(|e| e.to_string())?;
    if !cotterd::passwords::verify(PIN, &phc) || cotterd::passwords::verify("135791", &phc) {
        return Err("argon2: the PIN does not check as it should".into());
    }
    let argon2 = rate(argon2_threads, seconds, |_| {
        cotterd::passwords::verify(PIN, &phc)
    })?;

    let keys = Keys::new();
    let messages: Vec<Vec<u8>> = (0..MESSAGES).map(sample_message).collect();
    let ed_key = keys.ed25519.verifying_key();
    let ed_sigs: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| keys.sign(Kind::Ed25519, m))
        .collect();
    let ed25519 = rate(threads, seconds, |i| {
        let i = i % MESSAGES;
        ed25519_dalek::Signature::from_slice(&ed_sigs[i])
            .is_ok_and(|sig| ed_key.verify_strict(&messages[i], &sig).is_ok())
    })?;

    let p_key = *keys.p256.verifying_key();
    let p_sigs: Vec<Vec<u8>> = messages.iter().map(|m| keys.sign(Kind::P256, m)).collect();
    let p256 = rate(threads, seconds, |i| {
        let i = i % MESSAGES;
        p256::ecdsa::Signature::from_der(&p_sigs[i])
            .is_ok_and(|sig| p_key.verify(&messages[i], &sig).is_ok())
    })?;

    Ok(json!({
        "threads": threads,
        "argon2_threads": argon2_threads,
        "seconds": seconds,
        "argon2_phc_prefix": phc.splitn(5, '$').take(4).collect::<Vec<_>>().join("$"),
        "argon2_verify_per_sec": argon2,
        "ed25519_verify_per_sec": ed25519,
        "p256_verify_per_sec": p256,
    }))
}

fn bodies(
    kind: Kind,
    user: &str,
    key_id: &str,
    count: usize,
    first: usize,
    out: &str,
) -> Result<(), String> {
    let (ed, p) = public_keys();
    let public_key = match kind {
        Kind::Ed25519 => ed,
        Kind::P256 => p,
    };
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        .as_secs()
        .to_string();
    let keys = Keys::new();
    let body = |i: usize| {
        let event = format!("LOGIN_{i}");
        let message = format!("{user}{key_id}{event}{timestamp}{METHOD}true");
        json!({
            "client_user_id": user,
            "event": event,
            "timestamp": timestamp,
            "method": METHOD,
            "code": STANDARD.encode(keys.sign(kind, message.as_bytes())),
            "approved": true,
            "public_key": public_key,
        })
        .to_string()
    };
    // Signing a P-256 body takes tens of microseconds: the lines are made on every core.
    let threads = thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = count.div_ceil(threads).max(1);
    let lines: Vec<Vec<String>> = thread::scope(|scope| {
        let parts: Vec<_> = (0..count)
            .step_by(chunk)
            .map(|start| {
                let body = &body;
                scope.spawn(move || {
                    (start..(start + chunk).min(count))
                        .map(|i| body(first + i))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .map(|p| p.join().unwrap_or_default())
            .collect()
    });
    let mut file = BufWriter::new(File::create(out).map_err(|e| format!("{out}: {e}"))?);
    let mut written = 0;
    for line in lines.iter().flatten() {
        writeln!(file, "{line}").map_err(|e| format!("{out}: {e}"))?;
        written += 1;
    }
    file.flush().map_err(|e| format!("{out}: {e}"))?;
    if written != count {
        return Err(format!("wrote {written} bodies, not {count}"));
    }
    Ok(())
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Limit {
            threads,
            argon2_threads,
            seconds,
        } => limit(threads, argon2_threads.unwrap_or(threads), seconds)
            .map(|rates| println!("{rates}")),
        Command::Keys => {
            let (ed25519, p256) = public_keys();
            println!("{}", json!({ "ed25519": ed25519, "p256": p256 }));
            Ok(())
        }
        Command::Bodies {
            algorithm,
            user,
            key_id,
            count,
            first,
            out,
        } => bodies(algorithm, &user, &key_id, count, first, &out),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("sdk_bench: {err}");
            ExitCode::FAILURE
        }
    }
}
