"""What the measuring scripts (bench/run, reliability/run) share: running commands, PostgreSQL
URLs, and starting and stopping the release binary."""

import os
import socket
import subprocess
import sys
import time

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


def cotterd(args, database_url):
    env = dict(os.environ, DATABASE_URL=database_url, RUST_LOG="warn")
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
