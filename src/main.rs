//! The `cotterd` command: the server (default) and the administration commands.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use actix_web::http::KeepAlive;

use clap::error::ErrorKind;
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use serde_json::json;
use uuid::Uuid;

use cotterd::audit::Context;
use cotterd::config::{DatabaseSettings, Settings};
use cotterd::db::{self, DbConn};
use cotterd::transfer::files;
use cotterd::transfer::import::{OnConflict, Options};
use cotterd::transfer::Format;
use cotterd::{projects, time, AppState};

#[derive(Parser)]
#[command(
    name = "cotterd",
    version,
    about = "A self-hostable identity API server compatible with Cotter's v0 User API"
)]
struct Cli {
    /// Every command's: before or after the command.
    #[command(flatten)]
    database: DatabaseSettings,

    /// The server's settings, when no command is given (which serves); with `serve`, after it.
    #[command(flatten)]
    settings: Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (what runs when no command is given).
    Serve(Box<Settings>),
    /// Apply pending database migrations and exit (`serve` also does this at start-up).
    Migrate,
    /// Create, list and configure projects (issuers).
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Issue, list and revoke a project's API secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
    /// Export a project's users to an NDJSON file, or import users from one (or from Cotter's
    /// saved user lists), on the database directly.
    #[command(subcommand)]
    Users(UsersCommand),
    /// Copy a whole database into a new, empty one, on either backend (SQLite to PostgreSQL when
    /// an installation outgrows SQLite, or back); both sides are checked equal before it commits.
    /// Stop the servers first: what they write after the copy starts is not copied.
    Copy {
        /// The database to copy (`postgres://…`, `sqlite://PATH` or a file path), with every
        /// migration applied; it is only read.
        #[arg(long)]
        from: String,
        /// The database to copy into (same forms): created and migrated when needed; it must
        /// hold no rows.
        #[arg(long)]
        to: String,
        /// Rows per INSERT statement (fewer for wide tables, to stay under 30,000 parameters).
        #[arg(long, default_value_t = cotterd::copy::DEFAULT_BATCH,
              value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=30_000))]
        batch: usize,
    },
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project; prints its API_KEY_ID and its first API_SECRET_KEY (shown once only).
    Create {
        /// A name for people (1 to 100 characters).
        #[arg(long)]
        name: String,
        /// Require API_SECRET_KEY on every route, not only on the user list.
        #[arg(long)]
        require_secret: bool,
        /// Print `{"api_key_id": "...", "api_secret_key": "..."}` only.
        #[arg(long)]
        json: bool,
    },
    /// List every project.
    List {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Change a project's policy.
    Set {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// Whether every route needs API_SECRET_KEY (true) or only the user list (false).
        #[arg(long, action = clap::ArgAction::Set)]
        require_secret: bool,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Issue another secret for a project (to rotate: issue, move clients, revoke the old one).
    Create {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// Print `{"api_key_id": "...", "api_secret_key": "...", "secret_id": "..."}` only.
        #[arg(long)]
        json: bool,
    },
    /// List a project's secrets by id and prefix (the secrets themselves are not stored).
    List {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
    },
    /// Revoke one secret, named by its prefix or its id. Servers stop accepting it within
    /// AUTH_CACHE_TTL_SECS.
    Revoke {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// The secret's printed prefix (`cotterd_sk_1a2b3c4d`) or more of the secret.
        #[arg(long, conflicts_with = "id", required_unless_present = "id")]
        secret_prefix: Option<String>,
        /// The secret's id, as `secrets list` prints it.
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Subcommand)]
enum UsersCommand {
    /// Write every user of a project (any status) as export records, one JSON line each.
    Export {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// The file to write (standard output when absent).
        #[arg(long)]
        output: Option<PathBuf>,
        /// Add each user's password hash (PHC string) to its record.
        #[arg(long)]
        include_password_hash: bool,
    },
    /// Import users from NDJSON (export records, Cotter User objects or `{"identifier"}`), or
    /// from a JSON array (a file ending in .json); prints one result line per record.
    Import {
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// The file to read.
        file: PathBuf,
        /// What a record whose id or identifier a user already has does.
        #[arg(long, value_parser = ["fail", "skip", "update"], default_value = "fail")]
        on_conflict: String,
        /// Check every record, write nothing.
        #[arg(long)]
        dry_run: bool,
        /// `ndjson` or `json` (an array); by default `.json` files are arrays.
        #[arg(long, value_parser = ["ndjson", "json"])]
        format: Option<String>,
    },
}

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("cotterd: cannot read .env: {err}");
            return ExitCode::FAILURE;
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = parse();
    let database = cli.database;
    let result = match cli.command {
        None => serve(Settings {
            database,
            ..cli.settings
        }),
        Some(Command::Serve(settings)) => serve(Settings {
            database,
            ..*settings
        }),
        Some(Command::Migrate) => migrate(&database),
        Some(Command::Projects(command)) => projects_command(&database, command),
        Some(Command::Secrets(command)) => secrets_command(&database, command),
        Some(Command::Users(command)) => users_command(&database, command),
        Some(Command::Copy { from, to, batch }) => copy(&database, from, to, batch),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cotterd: {err}");
            ExitCode::FAILURE
        }
    }
}

/// The command line, with the server's flags refused before a command (`cotterd --bind-addr X
/// projects list`): they belong to `cotterd` alone or follow `serve`.
fn parse() -> Cli {
    let matches = Cli::command().get_matches();
    if matches.subcommand_name().is_some() {
        if let Some(flag) = server_flag_given(&matches) {
            Cli::command()
                .error(
                    ErrorKind::ArgumentConflict,
                    format!(
                        "--{flag} is a setting of the server: give it after `cotterd serve`, \
                         or give no command"
                    ),
                )
                .exit();
        }
    }
    Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
}

/// The long name of a server flag given on the command line before the command, if any.
fn server_flag_given(matches: &ArgMatches) -> Option<String> {
    let server = Settings::augment_args(clap::Command::new("serve"));
    let given = server
        .get_arguments()
        .find(|arg| matches.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine))
        .map(|arg| arg.get_long().unwrap_or(arg.get_id().as_str()).to_owned());
    given
}

fn serve(settings: Settings) -> Result<(), String> {
    let state = AppState::open(settings)?;
    let bind_addr = state.settings.bind_addr.clone();
    let header_timeout_ms = state.settings.header_timeout_ms;
    let keep_alive_secs = state.settings.keep_alive_secs;
    let shutdown_timeout_secs = state.settings.shutdown_timeout_secs;
    let workers = match state.settings.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    // Requests' database calls run on the database threads (`db::threads`); the blocking
    // threads run password hashes (bounded by their own slots), key loads (one per project at a
    // time, each on a pooled connection), signature checks and the probes: more would only
    // cost memory.
    let blocking_threads = (state.settings.hash_concurrency() + 4).div_ceil(workers);
    {
        let mut conn = state
            .pool
            .get()
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        if !projects::any_exists(conn.conn()).map_err(|e| e.for_operator())? {
            log::warn!(
                "no project exists yet: create one with `cotterd projects create --name NAME` \
                 (with the same DATABASE_URL)"
            );
        }
    }
    log::info!("listening on http://{bind_addr}");
    actix_web::rt::System::new().block_on(async move {
        cotterd::janitor::spawn(state.clone());
        // SIGTERM stops the server gracefully (SIGINT at once): it stops accepting, lets requests in
        // flight finish (at most SHUTDOWN_TIMEOUT_SECS), then the pool is dropped and the
        // process exits 0.
        actix_web::HttpServer::new(move || cotterd::app(state.clone()))
            .workers(workers)
            .worker_max_blocking_threads(blocking_threads)
            .client_request_timeout(Duration::from_millis(header_timeout_ms))
            .client_disconnect_timeout(Duration::from_secs(1))
            .keep_alive(match keep_alive_secs {
                0 => KeepAlive::Disabled,
                secs => KeepAlive::Timeout(Duration::from_secs(secs)),
            })
            .shutdown_timeout(shutdown_timeout_secs)
            .bind(&bind_addr)
            .map_err(|e| format!("cannot listen on {bind_addr}: {e}"))?
            .run()
            .await
            .map_err(|e| format!("server failed: {e}"))?;
        log::info!("stopped");
        Ok(())
    })
}

fn migrate(database: &DatabaseSettings) -> Result<(), String> {
    // Connecting applies the pending migrations.
    db::connect_one(database)?;
    println!("migrations are up to date");
    Ok(())
}

/// `cotterd copy`: both sides take the SQLite settings of every command; DATABASE_URL plays no
/// part.
fn copy(database: &DatabaseSettings, from: String, to: String, batch: usize) -> Result<(), String> {
    let side = |database_url| DatabaseSettings {
        database_url,
        ..database.clone()
    };
    let mut out = std::io::stdout();
    cotterd::copy::run(&side(from), &side(to), batch, &mut out)?;
    Ok(())
}

/// Runs `f` on one connection to the database of `database` (migrated first).
fn with_conn(
    database: &DatabaseSettings,
    f: impl FnOnce(&mut DbConn) -> cotterd::error::Result<()>,
) -> Result<(), String> {
    let mut conn = db::connect_one(database)?;
    f(&mut conn).map_err(|e| e.for_operator())
}

fn projects_command(database: &DatabaseSettings, command: ProjectsCommand) -> Result<(), String> {
    match command {
        ProjectsCommand::Create {
            name,
            require_secret,
            json,
        } => with_conn(database, |conn| {
            create_project(conn, &name, require_secret, json)
        }),
        ProjectsCommand::List { json } => with_conn(database, |conn| list_projects(conn, json)),
        ProjectsCommand::Set {
            project,
            require_secret,
        } => with_conn(database, |conn| {
            let project =
                projects::set_require_secret(conn, &project, require_secret, &Context::cli())?;
            println!(
                "Project {} now requires API_SECRET_KEY on {} (servers apply it within AUTH_CACHE_TTL_SECS).",
                project.id,
                if project.require_secret { "every route" } else { "the user list only" }
            );
            Ok(())
        }),
    }
}

fn create_project(
    conn: &mut DbConn,
    name: &str,
    require_secret: bool,
    json: bool,
) -> cotterd::error::Result<()> {
    let (project, secret) = projects::create(conn, name, require_secret, &Context::cli())?;
    if json {
        // Exactly the documented line, spaced as in the docs.
        println!(
            "{{\"api_key_id\": {}, \"api_secret_key\": {}}}",
            json!(project.id),
            json!(secret.secret)
        );
    } else {
        println!("Project \"{}\" created.", project.name);
        println!("API_KEY_ID:     {}", project.id);
        println!("API_SECRET_KEY: {}", secret.secret);
        println!();
        println!("The secret is shown only this once: store it now.");
    }
    Ok(())
}

fn list_projects(conn: &mut DbConn, json: bool) -> cotterd::error::Result<()> {
    let all = projects::list(conn)?;
    if json {
        let rows: Vec<_> = all
            .iter()
            .map(|p| {
                json!({
                    "api_key_id": p.id,
                    "name": p.name,
                    "require_secret": p.require_secret,
                    "created_at": time::format(p.created_at),
                })
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
    } else if all.is_empty() {
        println!("No projects. Create one with `cotterd projects create --name NAME`.");
    } else {
        println!(
            "{:<36}  {:<14}  {:<27}  NAME",
            "API_KEY_ID", "REQUIRE_SECRET", "CREATED_AT"
        );
        for p in all {
            println!(
                "{:<36}  {:<14}  {:<27}  {}",
                p.id,
                p.require_secret,
                time::format(p.created_at),
                p.name
            );
        }
    }
    Ok(())
}

fn users_command(database: &DatabaseSettings, command: UsersCommand) -> Result<(), String> {
    match command {
        UsersCommand::Export {
            project,
            output,
            include_password_hash,
        } => {
            let written =
                files::export_users(database, &project, output.as_deref(), include_password_hash)?;
            if let Some(output) = output {
                eprintln!("{written} users written to {}", output.display());
            }
            Ok(())
        }
        UsersCommand::Import {
            project,
            file,
            on_conflict,
            dry_run,
            format,
        } => {
            let json = match format.as_deref() {
                Some(format) => format == "json",
                None => file
                    .extension()
                    .is_some_and(|e| e.eq_ignore_ascii_case("json")),
            };
            let options = Options {
                format: if json {
                    Format::JsonArray
                } else {
                    Format::Ndjson
                },
                on_conflict: OnConflict::parse(&on_conflict).unwrap_or(OnConflict::Fail),
                dry_run,
            };
            let summary = files::import_users(database, &project, &file, options)?;
            eprintln!(
                "{} records: {} created, {} updated, {} skipped, {} errors{}",
                summary.records,
                summary.created,
                summary.updated,
                summary.skipped,
                summary.errors,
                if dry_run {
                    " (dry run: nothing written)"
                } else {
                    ""
                }
            );
            match (summary.complete, summary.errors) {
                (false, _) => Err(format!(
                    "the import stopped: {}",
                    summary.detail.unwrap_or_default()
                )),
                (true, 0) => Ok(()),
                (true, n) => Err(format!("{n} records were not imported (see their lines)")),
            }
        }
    }
}

fn secrets_command(database: &DatabaseSettings, command: SecretsCommand) -> Result<(), String> {
    match command {
        SecretsCommand::Create { project, json } => with_conn(database, |conn| {
            let secret = projects::add_secret(conn, &project, &Context::cli())?;
            if json {
                println!(
                    "{}",
                    json!({"api_key_id": project.to_string(), "api_secret_key": secret.secret, "secret_id": secret.id})
                );
            } else {
                println!(
                    "Secret {} ({}) issued for project {project}.",
                    secret.id, secret.prefix
                );
                println!("API_SECRET_KEY: {}", secret.secret);
                println!();
                println!("The secret is shown only this once: store it now.");
            }
            Ok(())
        }),
        SecretsCommand::List { project } => with_conn(database, |conn| {
            println!(
                "{:<36}  {:<19}  {:<27}  REVOKED_AT",
                "ID", "PREFIX", "CREATED_AT"
            );
            for s in projects::list_secrets(conn, &project)? {
                println!(
                    "{:<36}  {:<19}  {:<27}  {}",
                    s.id,
                    s.prefix,
                    time::format(s.created_at),
                    s.revoked_at.map_or_else(|| "-".to_owned(), time::format)
                );
            }
            Ok(())
        }),
        SecretsCommand::Revoke {
            project,
            secret_prefix,
            id,
        } => with_conn(database, |conn| {
            let selector = secret_prefix.or(id).unwrap_or_default();
            let revoked = projects::revoke_secret(
                conn,
                &project,
                &selector,
                projects::LastSecret::Allow,
                &Context::cli(),
            )?;
            println!(
                "Secret {} ({}) revoked; servers stop accepting it within AUTH_CACHE_TTL_SECS.",
                revoked.id, revoked.prefix
            );
            Ok(())
        }),
    }
}
