//! tracing setup: structured logs to stderr, human or JSON.

use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, LogFormat};

/// Install the log subscriber: RUST_LOG when set, else a level from -v/-q.
pub fn init(global: &GlobalArgs) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    };
    // delta-rs logs at error level what it also returns as an error (such as opening a table
    // that does not exist yet, which dp does before creating it); dp reports those itself.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{level},deltalake_core=off,delta_kernel=off")));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Masked(std::io::stderr()));
    match global.log_format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// stderr, with every secret masked.
struct Masked(std::io::Stderr);

impl std::io::Write for Masked {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.0
            .write_all(dp_engine::report::mask(&text).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}
