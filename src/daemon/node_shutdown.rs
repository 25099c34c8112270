//! Whether a stopping daemon's node goes down with it, which decides
//! what the LRM does with its services (the shutdown policy).

use crate::core::env::NodeShutdown;
use crate::node::config::NodeConfig;

/// Whether the node itself is going down, from the service manager's
/// queued jobs (as upstream does); `StaysUp` without systemd, which makes
/// SIGTERM a daemon restart.
///
/// With `fault_injection`, `<state_dir>/node-shutdown` holding `shutdown`
/// or `reboot` says the same (tests of the shutdown policies).
pub fn node_shutdown(config: &NodeConfig) -> NodeShutdown {
    if config.fault_injection
        && let Ok(text) = std::fs::read_to_string(config.state_dir.join("node-shutdown"))
    {
        match text.trim() {
            "shutdown" => return NodeShutdown::PowerOff,
            "reboot" => return NodeShutdown::Reboot,
            _ => {}
        }
    }
    let output = std::process::Command::new("systemctl")
        .args(["--full", "--no-legend", "list-jobs"])
        .output();
    let Ok(output) = output else {
        return NodeShutdown::StaysUp;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let has = |target: &str| text.lines().any(|l| l.split_whitespace().nth(1) == Some(target));
    if has("reboot.target") {
        NodeShutdown::Reboot
    } else if has("shutdown.target") {
        NodeShutdown::PowerOff
    } else {
        NodeShutdown::StaysUp
    }
}
