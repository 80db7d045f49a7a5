"""What the measuring scripts (bench/run, reliability/run) share: running commands, PostgreSQL
URLs, and starting and stopping the release binary."""

import configparser
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "cotterd")


def log(msg):
    print(f"== {msg}", file=sys.stderr, flush=True)


def run(cmd, env=None, capture=True, check=True):
    result = subprocess.run(cmd, env=env, capture_output=capture, text=True)
    if check and result.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{result.stdout}\n{result.stderr}")
    return result.stdout


def build_release():
    log("building the release binary")
    run(["cargo", "build", "--release", "--quiet"], capture=False)


def db_url(admin_url, database):
    """`admin_url` (a PostgreSQL URL) with its database swapped for `database`."""
    base, _, query = admin_url.partition("?")
    server = base.rsplit("/", 1)[0]
    return f"{server}/{database}" + (f"?{query}" if query else "")


def psql(url, sql):
    # -w: never wait at a password prompt.
    return run(["psql", "-X", "-w", "-q", "-v", "ON_ERROR_STOP=1", "-At", url, "-c", sql])


def fresh_pg_database(admin_url, database):
    """Drops and recreates `database`; returns its URL."""
    psql(admin_url, f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
    psql(admin_url, f"CREATE DATABASE {database}")
    return db_url(admin_url, database)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cotterd(args, database_url, extra_env=None):
    env = dict(os.environ, DATABASE_URL=database_url, RUST_LOG="warn")
    env.update(extra_env or {})
    return run([BIN, *args], env=env)


def http_status(port, path, headers):
    """One GET over a plain socket; the status code, or None when nothing answers yet."""
    lines = [f"GET {path} HTTP/1.1", "Host: localhost", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
            head = s.recv(64).decode(errors="replace")
            return int(head[9:12]) if head.startswith("HTTP/1.1") else None
    except OSError:
        return None


def start_server(database_url, port, extra_env=None, stderr=subprocess.DEVNULL):
    """The release binary serving `database_url` on 127.0.0.1:`port`, rate limits off (the
    scripts measure the server, not its per-project budgets)."""
    env = dict(os.environ, DATABASE_URL=database_url, BIND_ADDR=f"127.0.0.1:{port}", RUST_LOG="warn",
               RATE_LIMIT_READS="0", RATE_LIMIT_WRITES="0", RATE_LIMIT_ADMIN="0")
    env.update(extra_env or {})
    return subprocess.Popen([BIN, "serve"], env=env, stdout=subprocess.DEVNULL, stderr=stderr)


def wait_serving(proc, port, timeout=30):
    """Waits for `/healthz` to answer 200."""
    deadline = time.monotonic() + timeout
    while http_status(port, "/healthz", {}) != 200:
        if proc.poll() is not None:
            sys.exit(f"the server exited with status {proc.returncode} before serving")
        if time.monotonic() > deadline:
            sys.exit(f"the server did not answer within {timeout} s")
        time.sleep(0.01)


def stop_server(proc):
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def as_postgres(cmd):
    """`cmd` run as the postgres user: PostgreSQL's server tools and PgBouncer refuse root."""
    if os.geteuid() == pwd.getpwnam("postgres").pw_uid:
        return cmd
    return ["runuser", "-u", "postgres", "--", *cmd]


def apt_install(packages):
    """Installs Debian's `packages` (apt-get update first): the scripts bring the real
    components they need themselves."""
    log(f"installing {', '.join(packages)}")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", *packages], env=env)


PGBOUNCER_EXAMPLE = os.path.join(ROOT, "deploy", "pgbouncer.ini.example")
PGBOUNCER = "/usr/sbin/pgbouncer"  # Debian's package puts it there, outside a user's PATH


class PgBouncer:
    """Debian's PgBouncer on loopback in front of `database` of the PostgreSQL server that
    `server_url` names (its host, port, user and password are PgBouncer's way in), configured as
    deploy/pgbouncer.ini.example says (transaction pooling and the rest), with `budget` server
    connections at most (max_db_connections and default_pool_size). Only what a throw-away
    instance must change is changed: its addresses, its files, trust authentication for its
    clients on loopback, and any of its [pgbouncer] settings a caller names in `overrides`.
    Runs as the postgres user (PgBouncer refuses root); `stop` ends it and removes its files."""

    def __init__(self, database, budget, server_url, overrides=None):
        server = urllib.parse.urlsplit(server_url)
        self.pg_host, self.pg_port = server.hostname or "127.0.0.1", server.port or 5432
        self.pg_user = urllib.parse.unquote(server.username or "postgres")
        self.pg_password = urllib.parse.unquote(server.password or "")
        self.database, self.budget = database, budget
        self.overrides = overrides or {}
        self.port = free_port()
        self.workdir = None
        self.proc = None

    def config(self):
        ini = configparser.ConfigParser(interpolation=None, delimiters=("=",))
        ini.optionxform = str  # PgBouncer's names are case-sensitive
        ini.read(PGBOUNCER_EXAMPLE)
        bouncer = ini["pgbouncer"]
        bouncer.update({
            "listen_addr": "127.0.0.1", "listen_port": str(self.port), "unix_socket_dir": self.workdir,
            "auth_type": "trust", "auth_file": os.path.join(self.workdir, "userlist.txt"),
            "logfile": os.path.join(self.workdir, "pgbouncer.log"),
            "pidfile": os.path.join(self.workdir, "pgbouncer.pid"),
            "default_pool_size": str(self.budget),
            **self.overrides,
        })
        ini.remove_section("databases")
        ini.add_section("databases")
        password = f" password={self.pg_password}" if self.pg_password else ""
        ini["databases"][self.database] = (f"host={self.pg_host} port={self.pg_port} dbname={self.database} "
                                           f"user={self.pg_user}{password} max_db_connections={self.budget}")
        return ini

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/{self.database}?sslmode=disable"

    def start(self):
        if not os.path.exists(PGBOUNCER):
            apt_install(["pgbouncer"])
        self.workdir = tempfile.mkdtemp(prefix="cotterd-pgbouncer-")
        pg = pwd.getpwnam("postgres")
        os.chown(self.workdir, pg.pw_uid, pg.pw_gid)
        path = os.path.join(self.workdir, "pgbouncer.ini")
        with open(path, "w") as f:
            self.config().write(f)
        with open(os.path.join(self.workdir, "userlist.txt"), "w") as f:
            f.write('"postgres" ""\n')
        self.proc = subprocess.Popen(as_postgres([PGBOUNCER, path]), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while subprocess.run(["psql", "-X", "-w", "-q", "-At", self.url(), "-c", "SELECT 1"],
                             capture_output=True).returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                sys.exit(f"PgBouncer did not start:\n{tail}")
            time.sleep(0.05)
        log(f"PgBouncer {self.version()} on 127.0.0.1:{self.port}: pool_mode "
            f"{self.config()['pgbouncer']['pool_mode']}, {self.budget} server connections at most")
        return self

    def version(self):
        return run([PGBOUNCER, "--version"]).splitlines()[0].split()[-1]

    def log_tail(self, lines=20):
        try:
            with open(os.path.join(self.workdir, "pgbouncer.log")) as f:
                return "".join(f.readlines()[-lines:])
        except (OSError, TypeError):
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # runuser passes it on
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

