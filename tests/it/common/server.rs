//! The real `cotterd` binary as a child process, and requests to it over a plain socket, as
//! curl sends them.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, ChildStderr, Command, Stdio};
use std::time::{Duration, Instant};

use super::TestDb;

/// A running server; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `cotterd` on a free port over `db` (one worker, `RUST_LOG=info` unless `extra_env`
/// says otherwise) and waits until it accepts connections. Its stderr (the log) is returned
/// for the caller to read: read it as it comes when the log may outgrow a pipe's buffer.
pub fn start_server(db: &TestDb, extra_env: &[(&str, &str)]) -> (Server, ChildStderr) {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_cotterd"))
        .env("DATABASE_URL", &db.url)
        .env("BIND_ADDR", format!("127.0.0.1:{port}"))
        .env("WORKERS", "1")
        .env("RUST_LOG", "info")
        .envs(extra_env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cotterd");
    let stderr = child.stderr.take().unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "server did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    (Server { child, port }, stderr)
}

/// A response read off the socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// The status line and the headers, as sent.
    pub head: String,
    pub body: Vec<u8>,
}

/// One request of raw bytes (which should say `Connection: close`); the whole response.
pub fn http_bytes(port: u16, request: &[u8]) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(response.len());
    let head = String::from_utf8_lossy(&response[..split]).into_owned();
    let body = response.get(split + 4..).unwrap_or_default().to_vec();
    let status = head
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    RawResponse { status, head, body }
}

/// Sends `req` over a fresh connection to the server on `port`: the status and the body.
pub fn send_wire(port: u16, req: &super::req::Req) -> (u16, String) {
    let response = http_bytes(port, &req.wire());
    let body = String::from_utf8(response.body).expect("UTF-8 body");
    (response.status, body)
}
