//! An HTTP proxy in front of the S3 server that injects the faults a real network and a real
//! store produce: a commit's response lost after the store took the write (the client retries
//! it), and an outage (every request answered 503) from a chosen moment on.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// What the proxy does to the requests it forwards.
#[derive(Debug, Default)]
pub struct Faults {
    /// While above zero, a Delta commit (`PUT …/_delta_log/<version>.json`) the store accepted is
    /// answered 500 instead, and the count goes down by one: its response is lost.
    pub lose_commit_responses: usize,
    /// From the first `PUT` of a Parquet file on, every request is answered 503.
    pub outage_after_parquet_put: bool,
    /// The commit responses lost so far.
    pub lost: usize,
    /// Whether the outage has begun (set by the proxy; cleared to end it).
    pub outage: bool,
}

/// A running proxy; stopped when dropped.
pub struct FaultyProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give dp instead of the server's.
    pub endpoint: String,
    pub faults: Arc<Mutex<Faults>>,
    stop: Arc<AtomicBool>,
}

impl FaultyProxy {
    /// Start a proxy to the server listening on `upstream_port` of 127.0.0.1.
    pub fn start(upstream_port: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let faults = Arc::new(Mutex::new(Faults::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let (shared, stopped) = (faults.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stopped.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let faults = shared.clone();
                        std::thread::spawn(move || {
                            let _ = serve(client, upstream_port, &faults);
                        });
                    }
                    Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
                }
            }
        });
        FaultyProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            faults,
            stop,
        }
    }

    /// The faults, to change them.
    pub fn faults(&self) -> std::sync::MutexGuard<'_, Faults> {
        self.faults.lock().unwrap()
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Serve one request of `client` (its connection is closed after the response).
fn serve(client: TcpStream, upstream_port: u16, faults: &Mutex<Faults>) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut head = Vec::new();
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        let end = line == b"\r\n";
        if !line.to_ascii_lowercase().starts_with(b"connection:") {
            head.extend_from_slice(&line);
        }
        if end {
            break;
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut words = text.split_whitespace();
    let (method, target) = (
        words.next().unwrap_or("").to_string(),
        words.next().unwrap_or(""),
    );
    let path = target.split('?').next().unwrap_or("").to_string();
    let length: usize = text
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;

    let is_commit = method == "PUT" && path.contains("/_delta_log/") && path.ends_with(".json");
    let is_parquet_put = method == "PUT" && path.ends_with(".parquet");
    if faults.lock().unwrap().outage {
        return answer(client, "503 Service Unavailable", "SlowDown");
    }

    // Forwarded on a connection of its own, closed by the server after its response.
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let head = text.replacen("\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1);
    upstream.write_all(head.as_bytes())?;
    upstream.write_all(&body)?;
    let mut response = Vec::new();
    upstream.read_to_end(&mut response)?;
    let accepted = response.starts_with(b"HTTP/1.1 200") || response.starts_with(b"HTTP/1.0 200");

    {
        let mut faults = faults.lock().unwrap();
        if is_parquet_put && faults.outage_after_parquet_put {
            faults.outage = true;
        }
        if is_commit && accepted && faults.lose_commit_responses > 0 {
            faults.lose_commit_responses -= 1;
            faults.lost += 1;
            drop(faults);
            return answer(client, "500 Internal Server Error", "InternalError");
        }
    }
    let mut client = client;
    client.write_all(&with_connection_close(&response))?;
    client.flush()
}

/// An S3 error response with `status` and error `code`.
fn answer(mut client: TcpStream, status: &str, code: &str) -> std::io::Result<()> {
    let body = format!(
        "<?xml version=\"1.0\"?><Error><Code>{code}</Code><Message>injected</Message></Error>"
    );
    write!(
        client,
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    client.flush()
}

/// `response` with `Connection: close` in its head, so that the client opens a new connection
/// for its next request.
fn with_connection_close(response: &[u8]) -> Vec<u8> {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return response.to_vec();
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let head: Vec<&str> = head
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    let mut out = head.join("\r\n").into_bytes();
    out.extend_from_slice(b"\r\nConnection: close");
    out.extend_from_slice(&response[end..]);
    out
}
