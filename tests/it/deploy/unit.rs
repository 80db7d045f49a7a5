//! `deploy/cotterd.service` and `deploy/cotterd.env.example`: systemd accepts the unit without a
//! warning, and both agree with the server (its command, its settings, its graceful stop).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use regex_lite::Regex;

use cotterd::config::Settings;

/// The binary the unit's `ExecStart=` runs once installed.
const INSTALLED_BINARY: &str = "/usr/local/bin/cotterd";
/// Names the env file may hold that are not the server's settings: read by `env_logger`.
const OTHER_NAMES: &[&str] = &["RUST_LOG"];

fn deploy_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(deploy_file(name)).unwrap_or_else(|e| panic!("read deploy/{name}: {e}"))
}

/// The unit's `Key=value` lines of section `section`, in order.
fn directives(unit: &str, section: &str) -> Vec<(String, String)> {
    let mut current = String::new();
    let mut out = Vec::new();
    for line in unit.lines().map(str::trim) {
        if line.starts_with('[') && line.ends_with(']') {
            current = line[1..line.len() - 1].to_owned();
        } else if !line.is_empty() && !line.starts_with('#') && !line.starts_with(';') {
            let (key, value) = line.split_once('=').expect("Key=value");
            if current == section {
                out.push((key.trim().to_owned(), value.trim().to_owned()));
            }
        }
    }
    out
}

/// The one value of `key` in `[Service]`.
fn service(unit: &str, key: &str) -> String {
    let values: Vec<_> = directives(unit, "Service")
        .into_iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v)
        .collect();
    assert_eq!(values.len(), 1, "{key}= once in [Service]: {values:?}");
    values[0].clone()
}

/// The env file's settings, commented-out ones (`# NAME=value`) included, by name.
fn env_settings(text: &str) -> Vec<(String, String, bool)> {
    let setting = Regex::new(r"^(# ?)?([A-Z][A-Z0-9_]*)=(.*)$").expect("pattern");
    text.lines()
        .filter_map(|line| setting.captures(line))
        .map(|c| (c[2].to_owned(), c[3].to_owned(), c.get(1).is_none()))
        .collect()
}

/// The settings the server reads from the environment, as `cotterd --help` lists them.
fn server_env_names() -> Vec<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .arg("--help")
        .output()
        .expect("run cotterd --help");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("UTF-8");
    let names: Vec<String> = Regex::new(r"\[env: ([A-Z0-9_]+)")
        .expect("pattern")
        .captures_iter(&help)
        .map(|c| c[1].to_owned())
        .collect();
    assert!(
        names.iter().any(|n| n == "DATABASE_URL") && names.iter().any(|n| n == "BIND_ADDR"),
        "--help no longer lists settings as `[env: NAME]`: {help}"
    );
    names
}

/// `systemd-analyze verify` on a copy of `unit` named cotterd.service, with the binary cargo
/// built in place of the installed one: the lines it prints about that unit.
fn verify(analyze: &Path, unit: &str) -> Vec<String> {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("cotterd.service");
    let built = env!("CARGO_BIN_EXE_cotterd");
    assert!(unit.contains(&format!("ExecStart={INSTALLED_BINARY} ")));
    std::fs::write(&path, unit.replace(INSTALLED_BINARY, built)).expect("write the unit");
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("run systemd-analyze verify");
    // What it says of other units (the system's own) is not this unit's business.
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .filter(|line| line.contains("cotterd.service") || line.contains(built))
        .map(str::to_owned)
        .collect()
}

/// `systemd-analyze`, when installed.
fn systemd_analyze() -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/bin")])
        .map(|dir| dir.join("systemd-analyze"))
        .find(|candidate| candidate.is_file())
}

#[test]
fn systemd_accepts_the_unit() {
    let Some(analyze) = systemd_analyze() else {
        println!(
            "skipped: systemd-analyze is not installed, deploy/cotterd.service is not verified"
        );
        return;
    };
    let unit = read("cotterd.service");
    let warnings = verify(&analyze, &unit);
    assert!(
        warnings.is_empty(),
        "systemd-analyze verify warns about deploy/cotterd.service:\n{}",
        warnings.join("\n")
    );

    // The check sees a broken unit: an unknown directive, a value systemd cannot read.
    let broken = unit.replace(
        "[Service]\n",
        "[Service]\nNoSuchDirective=yes\nRestartSec=soon\n",
    );
    let warnings = verify(&analyze, &broken);
    assert!(
        warnings.iter().any(|w| w.contains("NoSuchDirective")),
        "an unknown directive went unreported: {warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("soon")),
        "a bad value went unreported: {warnings:?}"
    );
    // And a binary that is not there.
    let missing = unit.replace(
        &format!("ExecStart={INSTALLED_BINARY} "),
        &format!("ExecStart={INSTALLED_BINARY}-missing "),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("cotterd.service"), &missing).expect("write the unit");
    let out = Command::new(&analyze)
        .args(["verify", "--man=no"])
        .arg(dir.path().join("cotterd.service"))
        .output()
        .expect("run systemd-analyze verify");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("-missing"),
        "a missing binary went unreported"
    );
}

#[test]
fn the_unit_runs_the_server_as_it_stops() {
    let unit = read("cotterd.service");
    // `cotterd serve`, which the binary knows.
    let exec = service(&unit, "ExecStart");
    assert_eq!(exec, format!("{INSTALLED_BINARY} serve"));
    let out = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .args(["serve", "--help"])
        .output()
        .expect("run cotterd serve --help");
    assert!(out.status.success(), "cotterd has no `serve` command");

    // SIGTERM is the graceful stop, and systemd waits longer than the server does.
    assert_eq!(service(&unit, "KillSignal"), "SIGTERM");
    let stop: u64 = service(&unit, "TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in seconds");
    let env = read("cotterd.env.example");
    let shutdown: u64 = env_settings(&env)
        .into_iter()
        .find(|(name, _, _)| name == "SHUTDOWN_TIMEOUT_SECS")
        .map(|(_, value, _)| value.parse().expect("seconds"))
        .expect("the env file sets SHUTDOWN_TIMEOUT_SECS");
    let default = Settings::with_database("unused").shutdown_timeout_secs;
    assert!(
        stop > shutdown && stop > default,
        "TimeoutStopSec={stop} must exceed SHUTDOWN_TIMEOUT_SECS ({shutdown}; default {default})"
    );

    assert_eq!(service(&unit, "Restart"), "on-failure");
    assert_eq!(
        service(&unit, "EnvironmentFile"),
        "/etc/cotterd/cotterd.env"
    );
    // The state directory is the working directory: a relative SQLite path lands in it.
    let state = service(&unit, "StateDirectory");
    assert_eq!(
        service(&unit, "WorkingDirectory"),
        format!("/var/lib/{state}")
    );
    // The hardening the README promises.
    for (key, value) in [
        ("NoNewPrivileges", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
    ] {
        assert_eq!(service(&unit, key), value, "{key}=");
    }
    assert!(
        service(&unit, "LimitNOFILE")
            .parse::<u64>()
            .expect("a number")
            >= 4096
    );
    assert!(!service(&unit, "User").is_empty());
}

#[test]
fn the_env_file_names_only_the_servers_settings() {
    let text = read("cotterd.env.example");
    let known = server_env_names();
    let settings = env_settings(&text);
    let mut unknown: Vec<_> = settings
        .iter()
        .map(|(name, _, _)| name.as_str())
        .filter(|name| !known.iter().any(|k| k == name) && !OTHER_NAMES.contains(name))
        .collect();
    unknown.dedup();
    assert!(
        unknown.is_empty(),
        "deploy/cotterd.env.example names settings cotterd does not read: {unknown:?}"
    );
    // The ones that matter for several instances behind a load balancer are set.
    for name in [
        "DATABASE_URL",
        "BIND_ADDR",
        "DB_POOL_SIZE",
        "SHUTDOWN_TIMEOUT_SECS",
        "AUTH_CACHE_TTL_SECS",
        "RATE_LIMIT_READS",
    ] {
        assert!(
            settings.iter().any(|(n, _, active)| n == name && *active),
            "deploy/cotterd.env.example does not set {name}"
        );
    }
    // systemd's EnvironmentFile= syntax, kept simple: a comment after a value would be part of it.
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        assert!(
            Regex::new(r"^[A-Z][A-Z0-9_]*=[^\s#'\x22]*$")
                .expect("pattern")
                .is_match(line),
            "not a plain KEY=VALUE line: {line}"
        );
    }
}

#[test]
fn the_server_accepts_the_env_files_values() {
    // Every value, commented-out ones included, through the server's own parser: `migrate`
    // parses the server's settings too, and refuses a value out of range. The database is a
    // SQLite file of the test's own.
    let text = read("cotterd.env.example");
    let values: BTreeMap<String, String> = env_settings(&text)
        .into_iter()
        .filter(|(name, _, _)| name != "DATABASE_URL")
        .map(|(name, value, _)| (name, value))
        .collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let migrate = |overrides: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_cotterd"))
            .arg("migrate")
            .env_clear()
            .envs(&values)
            .envs(overrides.iter().copied())
            .env("RUST_LOG", "warn")
            .env(
                "DATABASE_URL",
                format!("sqlite://{}", dir.path().join("c.db").display()),
            )
            .current_dir(dir.path())
            .output()
            .expect("run cotterd migrate")
    };
    let out = migrate(&[]);
    assert!(
        out.status.success(),
        "cotterd refuses deploy/cotterd.env.example's values: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The same run refuses a bad value: the check is not vacuous.
    let out = migrate(&[("SHUTDOWN_TIMEOUT_SECS", "soon")]);
    assert!(
        !out.status.success(),
        "cotterd accepted SHUTDOWN_TIMEOUT_SECS=soon"
    );
}
