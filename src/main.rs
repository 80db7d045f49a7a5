//! The `cotterd` command: the server (default) and the administration commands.

use std::process::ExitCode;
use std::time::Duration;

use actix_web::http::KeepAlive;

use clap::{Parser, Subcommand};
use serde_json::json;
use uuid::Uuid;

use cotterd::config::{DatabaseSettings, Settings};
use cotterd::db::{self, DbConn};
use cotterd::{projects, time, AppState};

#[derive(Parser)]
#[command(
    name = "cotterd",
    version,
    about = "A self-hostable identity API server compatible with Cotter's v0 User API",
    // The server's flags belong to `cotterd` alone or to `cotterd serve`: a command's flags
    // follow the command, and `cotterd --bind-addr X projects list` is refused.
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// The server's settings, when no command is given (which serves).
    #[command(flatten)]
    settings: Settings,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the HTTP API (what runs when no command is given).
    Serve(Settings),
    /// Apply pending database migrations and exit (`serve` also does this at start-up).
    Migrate(DatabaseSettings),
    /// Create, list and configure projects (issuers).
    #[command(subcommand)]
    Projects(ProjectsCommand),
    /// Issue, list and revoke a project's API secrets.
    #[command(subcommand)]
    Secrets(SecretsCommand),
}

#[derive(Subcommand)]
enum ProjectsCommand {
    /// Create a project; prints its API_KEY_ID and its first API_SECRET_KEY (shown once only).
    Create {
        #[command(flatten)]
        database: DatabaseSettings,
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
        #[command(flatten)]
        database: DatabaseSettings,
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Change a project's policy.
    Set {
        #[command(flatten)]
        database: DatabaseSettings,
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
        #[command(flatten)]
        database: DatabaseSettings,
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
        /// Print `{"api_key_id": "...", "api_secret_key": "...", "secret_id": "..."}` only.
        #[arg(long)]
        json: bool,
    },
    /// List a project's secrets by id and prefix (the secrets themselves are not stored).
    List {
        #[command(flatten)]
        database: DatabaseSettings,
        /// The project's API_KEY_ID.
        #[arg(long)]
        project: Uuid,
    },
    /// Revoke one secret, named by its prefix or its id. Servers stop accepting it within
    /// AUTH_CACHE_TTL_SECS.
    Revoke {
        #[command(flatten)]
        database: DatabaseSettings,
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

fn main() -> ExitCode {
    // A missing .env is normal; a malformed one is reported.
    if let Err(err) = dotenvy::dotenv() {
        if !err.not_found() {
            eprintln!("cotterd: cannot read .env: {err}");
            return ExitCode::FAILURE;
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    let result = match cli.command {
        None => serve(cli.settings),
        Some(Command::Serve(settings)) => serve(settings),
        Some(Command::Migrate(database)) => migrate(&database),
        Some(Command::Projects(command)) => projects_command(command),
        Some(Command::Secrets(command)) => secrets_command(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("cotterd: {err}");
            ExitCode::FAILURE
        }
    }
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
    // Blocking threads run database calls (at most one per pooled connection) and password
    // hashes (bounded by their own slots): more would only cost memory.
    let blocking_threads =
        (state.settings.db_pool_size() as usize + state.settings.hash_concurrency() + 2)
            .div_ceil(workers);
    {
        let mut conn = state
            .pool
            .get()
            .map_err(|e| format!("cannot connect to the database: {e}"))?;
        if !projects::any_exists(conn.conn()).map_err(|e| e.to_string())? {
            log::warn!(
                "no project exists yet: create one with `cotterd projects create --name NAME` \
                 (with the same DATABASE_URL)"
            );
        }
    }
    log::info!("listening on http://{bind_addr}");
    actix_web::rt::System::new().block_on(async move {
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

/// Runs `f` on one connection to the database of `database` (migrated first).
fn with_conn(
    database: &DatabaseSettings,
    f: impl FnOnce(&mut DbConn) -> cotterd::error::Result<()>,
) -> Result<(), String> {
    let mut conn = db::connect_one(database)?;
    f(&mut conn).map_err(|e| e.to_string())
}

fn projects_command(command: ProjectsCommand) -> Result<(), String> {
    match command {
        ProjectsCommand::Create {
            database,
            name,
            require_secret,
            json,
        } => with_conn(&database, |conn| {
            create_project(conn, &name, require_secret, json)
        }),
        ProjectsCommand::List { database, json } => {
            with_conn(&database, |conn| list_projects(conn, json))
        }
        ProjectsCommand::Set {
            database,
            project,
            require_secret,
        } => with_conn(&database, |conn| {
            let project = projects::set_require_secret(conn, &project, require_secret)?;
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
    let (project, secret) = projects::create(conn, name, require_secret)?;
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

fn secrets_command(command: SecretsCommand) -> Result<(), String> {
    match command {
        SecretsCommand::Create {
            database,
            project,
            json,
        } => with_conn(&database, |conn| {
            let secret = projects::add_secret(conn, &project)?;
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
        SecretsCommand::List { database, project } => with_conn(&database, |conn| {
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
            database,
            project,
            secret_prefix,
            id,
        } => with_conn(&database, |conn| {
            let selector = secret_prefix.or(id).unwrap_or_default();
            let revoked = projects::revoke_secret(conn, &project, &selector)?;
            println!(
                "Secret {} ({}) revoked; servers stop accepting it within AUTH_CACHE_TTL_SECS.",
                revoked.id, revoked.prefix
            );
            Ok(())
        }),
    }
}
