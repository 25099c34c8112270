//! The daemon's log lines: where they go (stderr, which the journal
//! collects under systemd), how they look, and what is shown by default.

use crate::node::config::LogFormat;

/// Log filter unless `HACTOR_LOG` says otherwise: HA decisions at info;
/// openraft only when something is wrong, and not the per-retry noise of
/// replicating to a member that is down (the CRM reports dead nodes).
const DEFAULT_LOG_FILTER: &str =
    "info,openraft=warn,openraft::replication=off,openraft::engine::handler::replication_handler=off";

/// The format the daemon logs in: `--log-format` if given, else the
/// configured one.
pub fn log_format(flag: Option<&str>, configured: LogFormat) -> LogFormat {
    match flag {
        Some("json") => LogFormat::Json,
        Some(_) => LogFormat::Plain,
        None => configured,
    }
}

/// Installs the log subscriber for the daemon's lifetime: `format` on
/// stderr, filtered by `HACTOR_LOG` or `DEFAULT_LOG_FILTER`.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HACTOR_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // Under systemd the journal stamps every line itself (and colours
    // would be stored as escape codes): plain lines without a timestamp.
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Plain if journal => builder.with_ansi(false).without_time().init(),
        LogFormat::Plain => builder.with_ansi(false).init(),
    }
}
