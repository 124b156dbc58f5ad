//! The S3-compatible server of the tests that need one (shared by the engine's and the end-to-end
//! tests): moto's server, installed by `tests/services/s3.sh` when absent, started on a free port
//! of 127.0.0.1, stopped when dropped.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

/// A running moto server.
pub struct Moto {
    process: Child,
    port: u16,
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
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(bin.join("moto_server"))
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let started = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed().as_secs() < 30,
                "moto_server did not listen"
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Self {
            process,
            port,
            endpoint: format!("http://127.0.0.1:{port}"),
            bin,
        }
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
