//! The services tests start beside dp, shared by the engine's and the end-to-end tests: free
//! ports on 127.0.0.1, waiting for a server to listen, and moto's S3 server (installed by
//! `tests/services/s3.sh` when absent, stopped when dropped).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub mod proxy;

/// A running moto server.
pub struct Moto {
    process: Child,
    /// The port it listens on, on 127.0.0.1.
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub endpoint: String,
    /// The virtualenv's bin folder: `python` there has boto3 and deltalake.
    pub bin: PathBuf,
}

impl Moto {
    /// Install (when absent) and start the server; panics when it cannot (the tests that need it
    /// fail rather than skip).
    pub fn start() -> Self {
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/services/s3.sh");
        let installed = Command::new("bash")
            .arg(script)
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs");
        assert!(
            installed.status.success(),
            "the S3 server could not be installed"
        );
        let bin = PathBuf::from(String::from_utf8(installed.stdout).unwrap().trim());
        // Another process may take the free port before moto binds it: then try another.
        for _ in 0..3 {
            let port = free_port();
            // moto logs every request: into a file, which (unlike a pipe) never fills up.
            let log = std::env::temp_dir().join(format!("dp-moto-{port}.log"));
            let mut process = Command::new(bin.join("moto_server"))
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("moto_server starts");
            let listening = wait_for_port(port, "moto_server", &mut process);
            if !listening {
                let said = std::fs::read_to_string(&log).unwrap_or_default();
                eprintln!("moto_server on port {port} exited: {said}");
            }
            if listening {
                return Self {
                    process,
                    port,
                    endpoint: format!("http://127.0.0.1:{port}"),
                    bin,
                };
            }
        }
        panic!("moto_server exited three times before it listened");
    }

    /// Create `bucket` (moto takes an unsigned request).
    pub fn create_bucket(&self, bucket: &str) {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    }

    /// A target for `dp_project.yml` whose warehouse is `s3://bucket/warehouse` on this server,
    /// with the credentials `key` and `secret` as written (text, or `{{ env_var('...') }}`).
    pub fn target_yaml(&self, name: &str, bucket: &str, key: &str, secret: &str) -> String {
        format!(
            "  {name}:\n\
             \x20   warehouse: s3://{bucket}/warehouse\n\
             \x20   storage_options:\n\
             \x20     endpoint: {endpoint}\n\
             \x20     region: us-east-1\n\
             \x20     allow_http: true\n\
             \x20     virtual_hosted_style_request: false\n\
             \x20     access_key_id: \"{key}\"\n\
             \x20     secret_access_key: \"{secret}\"\n",
            endpoint = self.endpoint
        )
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// A TCP port on 127.0.0.1 that nothing listens on.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Wait until `service` (the `process`) listens on `port` of 127.0.0.1: true once it does, false
/// when it exited first; panics after 30 s.
pub fn wait_for_port(port: u16, service: &str, process: &mut Child) -> bool {
    let started = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Ok(Some(status)) = process.try_wait() {
            eprintln!("{service} exited ({status}) before it listened");
            return false;
        }
        assert!(started.elapsed().as_secs() < 30, "{service} did not listen");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    true
}
