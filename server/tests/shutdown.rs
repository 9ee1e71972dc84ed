//! A client that stalls cannot keep `liteshop serve` running, nor hold a
//! connection open in normal operation: the real binary, real sockets,
//! real signals.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::free_port;

struct Serve {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(args: &[&str]) -> Serve {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_liteshop"))
        .arg("serve")
        .arg("--db")
        .arg(dir.path().join("shop.db"))
        .args(["--addr", &addr])
        .args(args)
        .env("LITESHOP_ADMIN_TOKEN", "admin")
        .env("LITESHOP_TOKEN_SECRET", "secret")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "the server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Serve {
        child,
        addr,
        _dir: dir,
    }
}

fn sigterm(child: &Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the process to exit, up to `limit`; how long it took.
fn exits_within(child: &mut Child, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// Reads what the server sends until it closes the connection (or `limit`).
fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&received).into_owned(), true),
            Ok(n) => received.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&received).into_owned(), true);
            }
            Err(_) => return (String::from_utf8_lossy(&received).into_owned(), false),
        }
    }
}

#[test]
fn sigterm_ends_the_process_within_the_grace_period_despite_stalled_clients() {
    // Timeouts far longer than the grace period: only the deadline can end
    // the stalled connections.
    let mut s = serve(&[
        "--shutdown-grace",
        "2",
        "--header-timeout",
        "600",
        "--body-timeout",
        "600",
    ]);
    // One client stalls half-way through its headers, one half-way through
    // its body.
    let mut half_headers = TcpStream::connect(&s.addr).unwrap();
    half_headers
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .unwrap();
    let mut half_body = TcpStream::connect(&s.addr).unwrap();
    half_body
        .write_all(b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"name\":")
        .unwrap();
    // One request in flight finishes in time: its body arrives after the
    // signal, well before the deadline.
    let mut in_time = TcpStream::connect(&s.addr).unwrap();
    let body = br#"{"name": "Kim"}"#;
    write!(
        in_time,
        "POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));

    let signalled = Instant::now();
    sigterm(&s.child);
    std::thread::sleep(Duration::from_millis(300));
    in_time.write_all(body).unwrap();
    let (answer, _) = read_until_closed(&mut in_time, Duration::from_secs(5));
    assert!(
        answer.starts_with("HTTP/1.1 201"),
        "the request in flight completes: {answer:?}"
    );

    let waited = exits_within(&mut s.child, Duration::from_secs(15))
        .map(|_| signalled.elapsed())
        .expect("the server exits after its grace period");
    assert!(
        waited >= Duration::from_millis(1_500) && waited < Duration::from_secs(6),
        "exited {waited:?} after SIGTERM, with a 2 s grace period"
    );
    let (_, closed) = read_until_closed(&mut half_headers, Duration::from_secs(2));
    assert!(closed, "the stalled connection was closed");
}

#[test]
fn a_slow_client_is_cut_off_in_normal_operation() {
    let s = serve(&["--header-timeout", "1", "--body-timeout", "1"]);
    // Half the headers, then nothing: the connection is closed.
    let mut slowloris = TcpStream::connect(&s.addr).unwrap();
    slowloris
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut slowloris, Duration::from_secs(10));
    assert!(
        closed,
        "a client that never finishes its headers is disconnected"
    );
    assert!(started.elapsed() < Duration::from_secs(5));

    // Headers, then half the body: 408 with a problem body, then closed.
    let mut slow_body = TcpStream::connect(&s.addr).unwrap();
    slow_body
        .write_all(b"POST /users HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{\"name\":")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut slow_body, Duration::from_secs(10));
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    assert!(answer.contains("application/problem+json"), "{answer:?}");
    assert!(answer.contains("body_timeout"), "{answer:?}");
    assert!(closed);

    // Everyone else is served meanwhile.
    let mut fine = TcpStream::connect(&s.addr).unwrap();
    fine.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (answer, _) = read_until_closed(&mut fine, Duration::from_secs(5));
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
}
