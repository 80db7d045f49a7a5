//! The migration policy: a migration is additive and backward compatible for one release, so
//! that the release before keeps working on the new schema while instances are rolled one at a
//! time (README.md, "Deploying").
//!
//! Every statement of every `up.sql` is read, and one that could break the release before —
//! dropping or renaming a table, a column, a constraint or a unique index, changing a column's
//! type, making a column required — is refused unless it carries a marker saying why that
//! release still works: `-- compatible: <reason>` on one of the statement's lines, or in the
//! comment lines right above it (no blank line between). Statements of migrations written before
//! the policy are listed in [`BASELINE`] with what they do to the release before. Down migrations
//! undo, and may drop what their up migration made.
//!
//! The check reads statements, not meaning: a new column the new release needs but the release
//! before leaves empty passes it, and stays the reviewer's to catch.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};

use regex_lite::Regex;

/// The first migration the policy applies to; [`BASELINE`] may list only older ones.
const POLICY_SINCE: &str = "2026-11-29";

/// What a statement may do to the release before.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Rule {
    /// `DROP TABLE` (or a view, sequence, type, schema, function, trigger, domain): what the
    /// release before reads.
    DropObject,
    /// `ALTER TABLE … DROP [COLUMN]`: the release before selects and inserts it.
    DropColumn,
    /// `… RENAME …`: the release before names the old one.
    Rename,
    /// `ALTER COLUMN … [SET DATA] TYPE`: the release before reads and binds the old type.
    ChangeType,
    /// `SET NOT NULL`: the release before may not write the column.
    SetNotNull,
    /// `ADD COLUMN … NOT NULL` without a `DEFAULT`: the release before does not write it.
    AddRequiredColumn,
    /// `ALTER COLUMN … DROP DEFAULT`: the release before may rely on it.
    DropDefault,
    /// `DROP INDEX` of a unique index (or of one these migrations did not create): the release
    /// before relies on the uniqueness it enforced.
    DropUniqueIndex,
    /// `DROP CONSTRAINT`: a key, a foreign key or a check the release before relies on.
    DropConstraint,
}

/// One statement of a migration: its lines (1-based) and its SQL without comments, on one line.
#[derive(Debug)]
struct Statement {
    first_line: usize,
    last_line: usize,
    sql: String,
}

/// A statement the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Finding {
    line: usize,
    rule: Rule,
    sql: String,
}

/// The names of the indexes the migrations made so far, by whether they are unique.
#[derive(Debug, Default)]
struct Indexes {
    unique: HashSet<String>,
    plain: HashSet<String>,
}

/// Splits SQL text into statements at `;`, leaving out `--` and `/* */` comments and not
/// splitting inside quotes (`'…'`, `"…"`, `$$…$$`).
fn statements(text: &str) -> Vec<Statement> {
    #[derive(PartialEq)]
    enum In {
        Code,
        LineComment,
        BlockComment,
        Quote(char),
        Dollar,
    }
    let mut out = Vec::new();
    let mut state = In::Code;
    let mut sql = String::new();
    let (mut line, mut first_line) = (1, None);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        match state {
            In::Code => match (c, next) {
                ('-', Some('-')) => state = In::LineComment,
                ('/', Some('*')) => {
                    chars.next();
                    state = In::BlockComment;
                }
                (';', _) => {
                    if let Some(first) = first_line.take() {
                        out.push(Statement {
                            first_line: first,
                            last_line: line,
                            sql: collapse(&sql),
                        });
                    }
                    sql.clear();
                }
                _ => {
                    if !c.is_whitespace() && first_line.is_none() {
                        first_line = Some(line);
                    }
                    match (c, next) {
                        ('\'' | '"', _) => state = In::Quote(c),
                        ('$', Some('$')) => {
                            sql.push(c);
                            chars.next();
                            state = In::Dollar;
                        }
                        _ => {}
                    }
                    sql.push(c);
                }
            },
            In::LineComment => {
                if c == '\n' {
                    sql.push(' ');
                    state = In::Code;
                }
            }
            In::BlockComment => {
                if c == '*' && next == Some('/') {
                    chars.next();
                    sql.push(' ');
                    state = In::Code;
                }
            }
            In::Quote(quote) => {
                sql.push(c);
                if c == quote {
                    state = In::Code;
                }
            }
            In::Dollar => {
                sql.push(c);
                if c == '$' && next == Some('$') {
                    sql.push('$');
                    chars.next();
                    state = In::Code;
                }
            }
        }
        if c == '\n' {
            line += 1;
        }
    }
    if let Some(first) = first_line {
        out.push(Statement {
            first_line: first,
            last_line: line,
            sql: collapse(&sql),
        });
    }
    out
}

/// Whitespace runs as one space, trimmed.
fn collapse(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The reason of a `-- compatible: <reason>` marker on `line`, when it gives one (three words
/// at least: a reason, not a `yes`).
fn marker(line: &str) -> Option<&str> {
    let (_, comment) = line.split_once("--")?;
    let reason = comment.trim_start().strip_prefix("compatible:")?.trim();
    (reason.split_whitespace().count() >= 3).then_some(reason)
}

/// Whether `statement` carries a marker: on one of its lines, or in the comment lines right
/// above it.
fn marked(lines: &[&str], statement: &Statement) -> bool {
    let own = &lines[statement.first_line - 1..statement.last_line.min(lines.len())];
    let above = lines[..statement.first_line - 1]
        .iter()
        .rev()
        .take_while(|l| l.trim_start().starts_with("--"));
    own.iter().chain(above).any(|l| marker(l).is_some())
}

/// `items` split at the commas outside parentheses.
fn top_level_split(items: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0i32, 0, Vec::new());
    for (i, c) in items.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(items[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(items[start..].trim());
    out
}

/// The rules `sql` (one statement, collapsed) breaks, given the indexes made before it; notes
/// the indexes it makes.
fn rules_broken(sql: &str, indexes: &mut Indexes) -> BTreeSet<Rule> {
    let upper = sql.to_uppercase();
    let re = |pattern: &str| Regex::new(pattern).expect("pattern");
    let mut broken = BTreeSet::new();

    if re(r"^DROP (TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|TYPE|SCHEMA|FUNCTION|TRIGGER|DOMAIN)\b")
        .is_match(&upper)
    {
        broken.insert(Rule::DropObject);
    }
    if upper.starts_with("ALTER ") && re(r"\bRENAME\b").is_match(&upper) {
        broken.insert(Rule::Rename);
    }
    if let Some(found) = re(r"^ALTER TABLE (IF EXISTS )?(ONLY )?[^ ]+ (.*)$").captures(&upper) {
        for action in top_level_split(&found[3]) {
            if action.starts_with("DROP CONSTRAINT") {
                broken.insert(Rule::DropConstraint);
            } else if re(r"^DROP (COLUMN )?").is_match(action) {
                broken.insert(Rule::DropColumn);
            }
            if re(r"^ALTER (COLUMN )?[^ ]+ (SET DATA )?TYPE\b").is_match(action) {
                broken.insert(Rule::ChangeType);
            }
            if action.contains("SET NOT NULL") {
                broken.insert(Rule::SetNotNull);
            }
            if re(r"^ALTER (COLUMN )?[^ ]+ DROP DEFAULT").is_match(action) {
                broken.insert(Rule::DropDefault);
            }
            let adds_column = re(r"^ADD ").is_match(action)
                && !re(r"^ADD (CONSTRAINT|PRIMARY|UNIQUE|FOREIGN|CHECK|EXCLUDE)\b")
                    .is_match(action);
            if adds_column && action.contains("NOT NULL") && !re(r"\bDEFAULT\b").is_match(action) {
                broken.insert(Rule::AddRequiredColumn);
            }
        }
    }
    let name = |raw: &str| {
        raw.trim_matches('"')
            .rsplit('.')
            .next()
            .unwrap_or(raw)
            .to_lowercase()
    };
    if let Some(found) =
        re(r"(?i)^CREATE (UNIQUE )?INDEX (CONCURRENTLY )?(IF NOT EXISTS )?([^ (]+)").captures(sql)
    {
        let index = name(&found[4]);
        if found.get(1).is_some() {
            indexes.plain.remove(&index);
            indexes.unique.insert(index);
        } else {
            indexes.unique.remove(&index);
            indexes.plain.insert(index);
        }
    }
    if let Some(found) =
        re(r"(?i)^DROP INDEX (CONCURRENTLY )?(IF EXISTS )?(.*?)( CASCADE| RESTRICT)?$")
            .captures(sql)
    {
        for index in found[3].split(',').map(|n| name(n.trim())) {
            if !indexes.plain.remove(&index) {
                indexes.unique.remove(&index);
                broken.insert(Rule::DropUniqueIndex);
            }
        }
    }
    broken
}

/// The statements of one migration's SQL the policy refuses (unmarked ones), in order.
fn findings(text: &str, indexes: &mut Indexes) -> Vec<Finding> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for statement in statements(text) {
        let broken = rules_broken(&statement.sql, indexes);
        if !broken.is_empty() && !marked(&lines, &statement) {
            out.extend(broken.into_iter().map(|rule| Finding {
                line: statement.first_line,
                rule,
                sql: statement.sql.clone(),
            }));
        }
    }
    out
}

/// A statement of a migration older than the policy that the policy would refuse, and what it
/// does to the release before.
struct Baselined {
    backend: &'static str,
    migration: &'static str,
    rule: Rule,
    /// A part of the statement's text that tells it apart.
    statement: &'static str,
    /// Why it is let through.
    why: &'static str,
}

/// Statements of the migrations written before the policy that it would refuse.
const BASELINE: &[Baselined] = &[
    Baselined {
        backend: "postgres",
        migration: "2026-11-27-000000_account_user_issuer",
        rule: Rule::DropConstraint,
        statement: "DROP CONSTRAINT accounts_user_id_fkey",
        why: "replaced in the same migration by the key on (user_id, issuer), which implies it; \
              the release before always wrote the user's own issuer",
    },
    Baselined {
        backend: "sqlite",
        migration: "2026-11-27-000000_account_user_issuer",
        rule: Rule::DropObject,
        statement: "DROP TABLE accounts",
        why: "SQLite cannot add a constraint to a table: accounts is rebuilt, same columns and \
              the key on (user_id, issuer), in the migration's transaction",
    },
    Baselined {
        backend: "sqlite",
        migration: "2026-11-27-000000_account_user_issuer",
        rule: Rule::Rename,
        statement: "RENAME TO accounts",
        why: "the second half of the same rebuild: accounts_new becomes accounts",
    },
    Baselined {
        backend: "postgres",
        migration: "2026-11-27-000001_admin",
        rule: Rule::DropUniqueIndex,
        statement: "DROP INDEX users_issuer_identifier_key",
        why: "replaced in the same migration by a unique index over the users not deleted; the \
              release before deleted no user, so both cover the same rows",
    },
    Baselined {
        backend: "sqlite",
        migration: "2026-11-27-000001_admin",
        rule: Rule::DropUniqueIndex,
        statement: "DROP INDEX users_issuer_identifier_key",
        why: "as on PostgreSQL",
    },
    Baselined {
        backend: "postgres",
        migration: "2026-11-27-000002_sdk_methods",
        rule: Rule::SetNotNull,
        statement: "ALTER COLUMN client_user_id SET NOT NULL",
        why: "NOT compatible: the release before does not write client_user_id, so PostgreSQL \
              refuses its creates; README.md (Settings) says to stop the older servers first",
    },
];

fn migrations_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations")
}

/// The migration folders of one backend, in the order diesel applies them.
fn migration_dirs(root: &Path, backend: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(backend))
        .unwrap_or_else(|e| panic!("read migrations/{backend}: {e}"))
        .map(|entry| entry.expect("entry"))
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// What is wrong with the layout under `root`: each backend's folders named as diesel names
/// them, each with both an `up.sql` and a `down.sql`, the same names for both backends.
fn layout_problems(root: &Path) -> Vec<String> {
    let name = Regex::new(r"^\d{4}-\d{2}-\d{2}-\d{6}_[a-z0-9_]+$").expect("pattern");
    let mut problems = Vec::new();
    for backend in ["postgres", "sqlite"] {
        for dir in migration_dirs(root, backend) {
            if !name.is_match(&dir) {
                problems.push(format!("{backend}/{dir}: not named YYYY-MM-DD-HHMMSS_name"));
            }
            for file in ["up.sql", "down.sql"] {
                if !root.join(backend).join(&dir).join(file).is_file() {
                    problems.push(format!("{backend}/{dir}: no {file}"));
                }
            }
        }
    }
    let postgres: BTreeSet<_> = migration_dirs(root, "postgres").into_iter().collect();
    let sqlite: BTreeSet<_> = migration_dirs(root, "sqlite").into_iter().collect();
    for only in postgres.symmetric_difference(&sqlite) {
        let (has, lacks) = if postgres.contains(only) {
            ("postgres", "sqlite")
        } else {
            ("sqlite", "postgres")
        };
        problems.push(format!("{has}/{only}: no folder of that name in {lacks}"));
    }
    problems
}

/// Every refused statement of one backend's up migrations: (migration, finding).
fn backend_findings(root: &Path, backend: &str) -> Vec<(String, Finding)> {
    let mut indexes = Indexes::default();
    let mut out = Vec::new();
    for dir in migration_dirs(root, backend) {
        let path = root.join(backend).join(&dir).join("up.sql");
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        out.extend(
            findings(&text, &mut indexes)
                .into_iter()
                .map(|f| (dir.clone(), f)),
        );
    }
    out
}

#[test]
fn every_migration_keeps_the_release_before_working() {
    let root = migrations_root();
    let mut refused = Vec::new();
    let mut baseline_used = vec![false; BASELINE.len()];
    for backend in ["postgres", "sqlite"] {
        for (migration, finding) in backend_findings(&root, backend) {
            let known = BASELINE.iter().position(|b| {
                b.backend == backend
                    && b.migration == migration
                    && b.rule == finding.rule
                    && finding.sql.contains(b.statement)
            });
            match known {
                Some(i) => baseline_used[i] = true,
                None => refused.push(format!(
                    "migrations/{backend}/{migration}/up.sql:{}: {:?}: {}",
                    finding.line, finding.rule, finding.sql
                )),
            }
        }
    }
    assert!(
        refused.is_empty(),
        "these statements may break the release before during a rolling upgrade; make them \
         additive, or say why that release still works in a `-- compatible: <reason>` comment \
         on the statement or right above it:\n{}",
        refused.join("\n")
    );
    for (entry, used) in BASELINE.iter().zip(baseline_used) {
        assert!(
            entry.migration < POLICY_SINCE,
            "the baseline is for migrations older than the policy ({POLICY_SINCE}), not {}",
            entry.migration
        );
        assert!(
            used,
            "baseline entry {}/{} {:?} `{}` matches no statement: remove it",
            entry.backend, entry.migration, entry.rule, entry.statement
        );
        println!(
            "older than the policy: {}/{}: {}: {}",
            entry.backend, entry.migration, entry.statement, entry.why
        );
    }
}

#[test]
fn migration_folders_are_complete_and_alike() {
    let problems = layout_problems(&migrations_root());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_layout_check_finds_what_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let make = |path: &str| {
        let path = dir.path().join(path);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, "SELECT 1;").expect("write");
    };
    make("postgres/2026-01-01-000000_both/up.sql");
    make("postgres/2026-01-01-000000_both/down.sql");
    make("sqlite/2026-01-01-000000_both/up.sql");
    make("sqlite/2026-01-01-000000_both/down.sql");
    make("postgres/2026-01-02-000000_pg_only/up.sql");
    make("postgres/2026-01-02-000000_pg_only/down.sql");
    make("sqlite/2026-01-03-000000_no_down/up.sql");
    make("postgres/2026-01-03-000000_no_down/up.sql");
    make("postgres/2026-01-03-000000_no_down/down.sql");
    make("sqlite/badly-named/up.sql");
    make("sqlite/badly-named/down.sql");
    let problems = layout_problems(dir.path());
    assert_eq!(
        problems,
        [
            "sqlite/2026-01-03-000000_no_down: no down.sql",
            "sqlite/badly-named: not named YYYY-MM-DD-HHMMSS_name",
            "postgres/2026-01-02-000000_pg_only: no folder of that name in sqlite",
            "sqlite/badly-named: no folder of that name in postgres",
        ]
    );
}

/// The rules `sql` breaks after `setup` ran (unmarked statements only).
fn refused(setup: &str, sql: &str) -> Vec<Rule> {
    let mut indexes = Indexes::default();
    assert!(findings(setup, &mut indexes).is_empty(), "setup: {setup}");
    findings(sql, &mut indexes)
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

const SETUP: &str = "CREATE TABLE t (id TEXT PRIMARY KEY, a TEXT);
CREATE UNIQUE INDEX t_a_key ON t (a);
CREATE INDEX t_a_idx ON t (a, id);";

#[test]
fn each_rule_refuses_its_statements() {
    let cases: &[(&str, &[Rule])] = &[
        ("DROP TABLE t;", &[Rule::DropObject]),
        ("drop view v;", &[Rule::DropObject]),
        ("DROP SEQUENCE IF EXISTS s;", &[Rule::DropObject]),
        ("ALTER TABLE t DROP COLUMN a;", &[Rule::DropColumn]),
        ("ALTER TABLE t DROP a;", &[Rule::DropColumn]),
        ("ALTER TABLE t RENAME TO u;", &[Rule::Rename]),
        ("ALTER TABLE t RENAME COLUMN a TO b;", &[Rule::Rename]),
        ("ALTER INDEX t_a_idx RENAME TO t_b_idx;", &[Rule::Rename]),
        ("ALTER TABLE t ALTER COLUMN a TYPE BIGINT;", &[Rule::ChangeType]),
        ("ALTER TABLE t ALTER a SET DATA TYPE BIGINT;", &[Rule::ChangeType]),
        ("ALTER TABLE t ALTER COLUMN a SET NOT NULL;", &[Rule::SetNotNull]),
        ("ALTER TABLE t ADD COLUMN b TEXT NOT NULL;", &[Rule::AddRequiredColumn]),
        ("ALTER TABLE t ADD b TEXT NOT NULL;", &[Rule::AddRequiredColumn]),
        ("ALTER TABLE t ALTER COLUMN a DROP DEFAULT;", &[Rule::DropDefault]),
        ("DROP INDEX t_a_key;", &[Rule::DropUniqueIndex]),
        ("DROP INDEX IF EXISTS public.t_a_key;", &[Rule::DropUniqueIndex]),
        // Not made by these migrations: it may be unique.
        ("DROP INDEX someone_elses_idx;", &[Rule::DropUniqueIndex]),
        ("ALTER TABLE t DROP CONSTRAINT t_pkey;", &[Rule::DropConstraint]),
        (
            "ALTER TABLE t\n    ADD COLUMN b TEXT,\n    ADD COLUMN c TEXT NOT NULL,\n    DROP COLUMN a;",
            &[Rule::DropColumn, Rule::AddRequiredColumn],
        ),
    ];
    for (sql, rules) in cases {
        assert_eq!(refused(SETUP, sql), *rules, "{sql}");
    }
}

#[test]
fn additive_statements_pass() {
    for sql in [
        "CREATE TABLE u (id TEXT NOT NULL PRIMARY KEY, b TEXT NOT NULL DEFAULT '');",
        "ALTER TABLE t ADD COLUMN b TEXT;",
        "ALTER TABLE t ADD COLUMN b TEXT NOT NULL DEFAULT '[]';",
        "ALTER TABLE t ADD CONSTRAINT t_id_a_key UNIQUE (id, a);",
        "ALTER TABLE t ADD CONSTRAINT t_a_check CHECK (a IS NOT NULL);",
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL;",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 'x';",
        "CREATE INDEX t_b_idx ON t (a) WHERE a IS NOT NULL;",
        "DROP INDEX t_a_idx;",
        "UPDATE t SET a = id;",
        "INSERT INTO t (id, a) VALUES ('x', 'DROP TABLE t; -- compatible');",
        "-- DROP TABLE t;\nSELECT 1;",
        "/* ALTER TABLE t DROP COLUMN a; */ SELECT 1;",
    ] {
        assert_eq!(refused(SETUP, sql), [], "{sql}");
    }
}

#[test]
fn a_marker_with_a_reason_lets_a_statement_through() {
    let passes = [
        // On the line before.
        "-- compatible: replaced by a key that adds the project.\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        // On the statement's own line.
        "ALTER TABLE t DROP CONSTRAINT t_pkey; -- compatible: the release before never reads it",
        // At the top of the comment lines right above it.
        "-- compatible: t_id_a_key (id, a), which the foreign keys reference,\n-- remains the table's unique key.\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        // On a later line of the statement.
        "ALTER TABLE t\n    DROP CONSTRAINT t_pkey; -- compatible: replaced by a wider key",
    ];
    for sql in passes {
        assert_eq!(refused(SETUP, sql), [], "{sql}");
    }
    let still_refused = [
        // Separated from it by a blank line: it says something about another statement.
        "-- compatible: replaced by a key that adds the project.\n\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        // Separated by another statement.
        "-- compatible: replaced by a key that adds the project.\nSELECT 1;\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        // No reason.
        "-- compatible:\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        "-- compatible: yes\nALTER TABLE t DROP CONSTRAINT t_pkey;",
        // Not the marker.
        "-- compatible with the old release, surely\nALTER TABLE t DROP CONSTRAINT t_pkey;",
    ];
    for sql in still_refused {
        assert_eq!(refused(SETUP, sql), [Rule::DropConstraint], "{sql}");
    }
    // A marker covers its statement only, not the next one.
    assert_eq!(
        refused(
            SETUP,
            "-- compatible: replaced by a key that adds the project.\n\
             ALTER TABLE t DROP CONSTRAINT t_pkey;\nALTER TABLE t DROP COLUMN a;"
        ),
        [Rule::DropColumn]
    );
}

#[test]
fn statements_are_found_with_their_lines() {
    let text =
        "-- head\nCREATE TABLE t (\n  a TEXT -- no ; here\n);\n\n'x;y';\nSELECT $$a;b$$;\nSELECT 2";
    let found: Vec<_> = statements(text)
        .into_iter()
        .map(|s| (s.first_line, s.last_line, s.sql))
        .collect();
    assert_eq!(
        found,
        [
            (2, 4, "CREATE TABLE t ( a TEXT )".to_owned()),
            (6, 6, "'x;y'".to_owned()),
            (7, 7, "SELECT $$a;b$$".to_owned()),
            (8, 8, "SELECT 2".to_owned()),
        ]
    );
}

#[test]
fn the_check_reads_every_up_migration_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let write = |migration: &str, up: &str| {
        let path = dir.path().join("postgres").join(migration);
        std::fs::create_dir_all(&path).expect("mkdir");
        std::fs::write(path.join("up.sql"), up).expect("write");
        // Down migrations are not held to the policy.
        std::fs::write(path.join("down.sql"), "DROP TABLE t;").expect("write");
    };
    write("2026-01-01-000000_first", SETUP);
    write(
        "2026-01-02-000000_second",
        "-- An index the first migration made unique, dropped unmarked.\nDROP INDEX t_a_key;\n\
         -- compatible: replaced by an index that adds the id.\nDROP INDEX t_a_idx;\n\
         CREATE INDEX t_a_idx ON t (a, id, b);\n\nALTER TABLE t DROP COLUMN a;",
    );
    let found: Vec<_> = backend_findings(dir.path(), "postgres")
        .into_iter()
        .map(|(migration, f)| (migration, f.line, f.rule))
        .collect();
    assert_eq!(
        found,
        [
            (
                "2026-01-02-000000_second".to_owned(),
                2,
                Rule::DropUniqueIndex
            ),
            ("2026-01-02-000000_second".to_owned(), 7, Rule::DropColumn),
        ]
    );
}
