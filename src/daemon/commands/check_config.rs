//! `hactor check-config`: a node configuration (or a fence.cfg) checked
//! without starting, the timing inequalities with their figures, and on
//! a running node a summary of its HA configuration.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use crate::api::protocol::{Request, Response};
use crate::cli::client::call_within;
use crate::node::config::NodeConfig;

/// `hactor check-config`: the node configuration (or, with `fence`, a
/// fence.cfg) checked as the daemon would read it.
pub fn check_config(config: Option<&Path>, fence: Option<&Path>, nodes: &[String]) -> ExitCode {
    if let Some(fence) = fence {
        let text = match std::fs::read_to_string(fence) {
            Ok(text) => text,
            Err(e) => {
                eprintln!("hactor: {}: cannot read: {e}", fence.display());
                return ExitCode::FAILURE;
            }
        };
        let (report, ok) = crate::config::fence::check_report(&fence.display().to_string(), &text, nodes);
        print!("{report}");
        return if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE };
    }
    let path = config.map_or_else(|| PathBuf::from(crate::node::config::DEFAULT_CONFIG), PathBuf::from);
    let config = match NodeConfig::load(&path) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("hactor: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}: valid", path.display());
    print!("{}", crate::node::check_config::report(&config));
    let mut failed = crate::node::check_config::inequalities(&config.timings)
        .iter()
        .any(|i| !i.holds);
    if let Some(fence) = &config.fence_config {
        let parsed = std::fs::read_to_string(fence)
            .map_err(|e| format!("cannot read: {e}"))
            .and_then(|text| {
                crate::config::fence::FenceConfig::parse(&text).map_err(|errors| {
                    let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
                    lines.join("; ")
                })
            });
        match parsed {
            Ok(devices) => println!(
                "hardware fencing: {} ({} devices: {}; see check-config --fence)",
                fence.display(),
                devices.devices().len(),
                devices.devices().join(", ")
            ),
            Err(e) => {
                failed = true;
                eprintln!("hactor: {}: {e}", fence.display());
            }
        }
    }
    if !config.socket.exists() {
        println!(
            "HA configuration: no daemon at {} (not checked)",
            config.socket.display()
        );
    } else {
        match ha_config_summary(&config.socket) {
            Ok(summary) => print!("{summary}"),
            Err(e) => println!("HA configuration: not checked - {e}"),
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}

/// The running daemon's HA configuration as `check-config` reports it:
/// counts, and the rules the feasibility checks drop.
fn ha_config_summary(socket: &Path) -> Result<String, String> {
    let timeout = Duration::from_secs(5);
    let mut out = format!("HA configuration (daemon at {}):\n", socket.display());
    if let Response::Resources { resources, .. } = call_within(socket, &Request::Config { kind: None }, timeout)? {
        out.push_str(&format!("  {} resources\n", resources.len()));
    }
    if let Response::Groups { groups, .. } = call_within(socket, &Request::GroupConfig, timeout)? {
        out.push_str(&format!("  {} groups\n", groups.len()));
    }
    if let Response::RulesCheck {
        checked,
        dropped,
        nodes,
    } = call_within(socket, &Request::RulesCheck { rules_cfg: None }, timeout)?
    {
        out.push_str(&format!(
            "  {checked} rules checked against nodes {}; {} dropped\n",
            nodes.join(","),
            dropped.len()
        ));
        for rule in dropped {
            for message in rule.messages {
                out.push_str(&format!("  rule '{}': {message}\n", rule.rule));
            }
        }
    }
    Ok(out)
}
