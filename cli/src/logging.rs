//! tracing setup: structured logs to stderr, human or JSON.

use tracing_subscriber::EnvFilter;

use crate::args::{GlobalArgs, LogFormat};

/// Install the log subscriber: RUST_LOG when set, else the filter of -v/-q.
pub fn init(global: &GlobalArgs) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter(global)));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| Masked(std::io::stderr()));
    match global.log_format {
        LogFormat::Human => builder.with_target(false).init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// What -v/-q log: -v and -vv dp's own info and debug events (the libraries' warnings only),
/// -vvv every library's debug events too. delta-rs logs at error level what it also returns as
/// an error (such as opening a table that does not exist yet, which dp does before creating
/// it); dp reports those itself.
fn filter(global: &GlobalArgs) -> String {
    let quiet_libraries = "deltalake_core=off,delta_kernel=off";
    match (global.quiet, global.verbose) {
        (true, _) => format!("error,{quiet_libraries}"),
        (false, 0) => format!("warn,{quiet_libraries}"),
        (false, 1) => format!("warn,dp=info,dp_engine=info,{quiet_libraries}"),
        (false, 2) => format!("warn,dp=debug,dp_engine=debug,{quiet_libraries}"),
        (false, _) => format!("debug,{quiet_libraries}"),
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
