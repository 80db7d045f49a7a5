//! `cotterd users export` and `cotterd users import`: the same export and import as the admin
//! API, run by an operator on the database directly (no server needed), with a progress bar on
//! a terminal and nothing extra when the output is not one.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Write};
use std::path::Path;

use indicatif::{ProgressBar, ProgressStyle};
use uuid::Uuid;

use super::export::{self, Export};
use super::import::{self, Options, Summary};
use crate::audit::Context;
use crate::config::DatabaseSettings;
use crate::users::admin::{self, Filter, Status};
use crate::{auth, db};

/// A progress bar on standard error when it is a terminal; a hidden one otherwise.
fn progress(total: u64, template: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}

/// Creates (or truncates) a file only its owner may read: an export holds personal data, and
/// password hashes when asked.
fn private_file(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// Writes every user of the project (any status) as export records to `output` (standard
/// output when `None`); how many.
pub fn export_users(
    database: &DatabaseSettings,
    project: &Uuid,
    output: Option<&Path>,
    include_password_hash: bool,
) -> Result<u64, String> {
    let mut conn = db::connect_one(database)?;
    let project = auth::project_for_operator(&mut conn, project).map_err(|e| e.for_operator())?;
    let filter = Filter {
        status: Status::All,
        prefix: None,
        created_after: None,
        created_before: None,
    };
    let total = admin::count(&mut conn, &project, &filter).map_err(|e| e.for_operator())?;
    let bar = progress(
        u64::try_from(total).unwrap_or(0),
        "{spinner} exporting {pos}/{len} users [{bar:30}] {per_sec} {eta}",
    );
    let mut out: Box<dyn Write + Send> = match output {
        Some(path) => Box::new(
            private_file(path).map_err(|e| format!("cannot write {}: {e}", path.display()))?,
        ),
        None => Box::new(std::io::stdout()),
    };
    let mut out = BufWriter::new(&mut out);
    let mut failed = None;
    let export = Export {
        filter,
        after: None,
        include_password_hash,
    };
    let written = export::run(&mut conn, &project, &export, |lines| {
        bar.inc(lines.iter().filter(|b| **b == b'\n').count() as u64);
        match out.write_all(&lines) {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })
    .map_err(|e| e.for_operator())?;
    if let Some(e) = failed {
        return Err(format!("cannot write the export: {e}"));
    }
    out.flush()
        .map_err(|e| format!("cannot write the export: {e}"))?;
    bar.finish_and_clear();
    Ok(written)
}

/// Imports `file` into the project, printing one result line per record (NDJSON, as the admin
/// API answers) to standard output; the summary.
pub fn import_users(
    database: &DatabaseSettings,
    project: &Uuid,
    file: &Path,
    options: Options,
) -> Result<Summary, String> {
    let mut conn = db::connect_one(database)?;
    let project = auth::project_for_operator(&mut conn, project).map_err(|e| e.for_operator())?;
    let input = File::open(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let size = input.metadata().map(|m| m.len()).unwrap_or(0);
    let bar = progress(
        size,
        "{spinner} importing [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    );
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let summary = import::run(
        &mut conn,
        &project,
        BufReader::new(bar.wrap_read(input)),
        options,
        &Context::cli(),
        |outcome| serde_json::to_writer(&mut out, outcome).is_ok() && out.write_all(b"\n").is_ok(),
    );
    let _ = serde_json::to_writer(&mut out, &import::SummaryLine { summary: &summary });
    let _ = out.write_all(b"\n");
    out.flush()
        .map_err(|e| format!("cannot write the results: {e}"))?;
    bar.finish_and_clear();
    Ok(summary)
}
