//! `hactor check-config`: what an operator runs before (re)starting a
//! node — the configuration is read exactly as the daemon reads it, and
//! the safety inequalities of the design (§3) are printed with the
//! figures that went into them, so a margin that is thin shows before it
//! bites.
//!
//! Also the line lookup for validation errors: TOML syntax errors carry
//! their line from the parser, but a value that parses and is refused
//! later (`lease_ms` too short, an empty `proc.web.command`) is named only
//! by its key; [`with_line`] finds that key in the text so every error
//! names a line where one exists.

use super::config::{NodeConfig, Timings};
use crate::core::store::outcome::QUICK_RETRY_DIVISOR;

/// One safety inequality with its figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inequality {
    /// Why it must hold, in a few words.
    pub name: &'static str,
    /// The inequality with every term and its value.
    pub figures: String,
    /// What goes wrong when it does not hold.
    pub consequence: &'static str,
    pub holds: bool,
}

/// The safety inequalities of the timing, spelt out with their figures
/// (all in milliseconds): what `Timings::check_safety` enforces and
/// `hactor check-config` prints. The values are at most an hour each
/// (checked first), so the saturating sums are exact.
pub fn inequalities(t: &Timings) -> Vec<Inequality> {
    let lease_needed = t
        .round_ms
        .saturating_add(t.watchdog_client_timeout_ms)
        .saturating_add(t.watchdog_device_timeout_ms)
        .saturating_add(t.margin_ms);
    let recovery = t.quorum_recovery_ms();
    let retry = t.retry_gap_ms();
    let client_needed = t
        .round_ms
        .saturating_add(recovery)
        .saturating_add(retry)
        .saturating_add(t.margin_ms);
    let online_floor = t.raft_heartbeat_ms.saturating_mul(3);
    vec![
        Inequality {
            name: "lease outlasts a self-fence",
            figures: format!(
                "lease_ms {} >= round_ms {} + watchdog_client_timeout_ms {} + watchdog_device_timeout_ms {} \
                 + margin_ms {} = {lease_needed}",
                t.lease_ms, t.round_ms, t.watchdog_client_timeout_ms, t.watchdog_device_timeout_ms, t.margin_ms
            ),
            consequence: "a node could be recovered elsewhere before its watchdog fenced it",
            holds: t.lease_ms >= lease_needed,
        },
        Inequality {
            name: "a Raft leader change fences nobody",
            figures: format!(
                "watchdog_client_timeout_ms {} >= round_ms {} + quorum recovery {recovery} \
                 (6 x raft_election_ms {} + 3.5 x raft_heartbeat_ms {}) + retry gap {retry} (round_ms / 2 \
                 + round_ms / {QUICK_RETRY_DIVISOR}) + margin_ms {} = {client_needed}",
                t.watchdog_client_timeout_ms, t.round_ms, t.raft_election_ms, t.raft_heartbeat_ms, t.margin_ms
            ),
            consequence: "losing the Raft leader fences every healthy node holding services",
            holds: t.watchdog_client_timeout_ms >= client_needed,
        },
        Inequality {
            name: "healthy peers stay online",
            figures: format!(
                "online_window_ms {} >= 3 x raft_heartbeat_ms {} = {online_floor}",
                t.online_window_ms, t.raft_heartbeat_ms,
            ),
            consequence: "healthy nodes are seen offline (heartbeats are committed every third of the window \
                          and a commit takes about a Raft heartbeat)",
            holds: t.online_window_ms >= online_floor,
        },
        Inequality {
            name: "the watchdog is fed in time",
            figures: format!(
                "watchdog_tick_ms {} < watchdog_client_timeout_ms {}",
                t.watchdog_tick_ms, t.watchdog_client_timeout_ms
            ),
            consequence: "the watchdog expires between two feedings",
            holds: t.watchdog_tick_ms < t.watchdog_client_timeout_ms,
        },
    ]
}

/// The report of a configuration that loaded: its main settings, the
/// inequalities and the failover time they imply.
pub fn report(config: &NodeConfig) -> String {
    let t = &config.timings;
    let mut out = String::new();
    out.push_str(&format!(
        "node {}, profile {}, watchdog {}{}\n",
        config.node,
        format!("{:?}", config.profile).to_lowercase(),
        format!("{:?}", config.watchdog).to_lowercase(),
        match config.watchdog {
            super::config::WatchdogBackend::Device => format!(" ({})", config.watchdog_device.display()),
            super::config::WatchdogBackend::Process => String::new(),
        }
    ));
    out.push_str(&format!(
        "state_dir {}, socket {}\n",
        config.state_dir.display(),
        config.socket.display()
    ));
    out.push_str("timing inequalities (ms):\n");
    for inequality in inequalities(t) {
        let verdict = if inequality.holds { "ok" } else { "VIOLATED" };
        out.push_str(&format!("  {verdict:<8} {}: {}\n", inequality.name, inequality.figures));
    }
    // The failover a dead node costs with watchdog fencing: it is noticed
    // offline after the online window, fenced after the fence delay, and
    // its lease must run out before its agent lock is acknowledged.
    let failover = t.online_window_ms.max(t.fence_delay_ms).saturating_add(t.lease_ms);
    out.push_str(&format!(
        "  worst-case watchdog failover about max(online_window_ms {}, fence_delay_ms {}) + lease_ms {} \
         = {failover} ms, plus a round or two\n",
        t.online_window_ms, t.fence_delay_ms, t.lease_ms
    ));
    out
}

/// `message` with `line N: ` in front when it names a key (or a table)
/// found in `text` and carries no line yet.
pub fn with_line(text: &str, message: String) -> String {
    if message.starts_with("line ") {
        return message;
    }
    match key_of(&message).and_then(|key| locate(text, &key)) {
        Some(line) => format!("line {line}: {message}"),
        None => message,
    }
}

/// The dotted key a validation message is about: its prefix before
/// `: ` (`proc.web.command: ...`), or a `[timing]` value an inequality
/// names first (`unsafe timing: lease_ms 3000 >= ...`,
/// `watchdog_tick_ms (5000) must ...`).
fn key_of(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unsafe timing: ").unwrap_or(message);
    let first = rest.split(' ').next()?;
    if first.ends_with("_ms") {
        return Some(format!("timing.{first}"));
    }
    let (prefix, _) = message.split_once(": ")?;
    if prefix.is_empty() || prefix.contains(' ') && !prefix.contains('"') {
        return None;
    }
    Some(prefix.to_string())
}

/// Normalises a dotted key: no quotes, no blanks around the dots.
fn normal(key: &str) -> String {
    key.split('.')
        .map(|part| part.trim().trim_matches('"'))
        .collect::<Vec<_>>()
        .join(".")
}

/// The 1-based line of `key` (`table.key`) in TOML `text`, or of its
/// table header when the key itself is not written (a default refused,
/// a table as a whole).
fn locate(text: &str, key: &str) -> Option<usize> {
    let wanted = normal(key);
    let mut table = String::new();
    let mut header = None;
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.split(']').next()) {
            table = normal(name.trim_start_matches('['));
            if table == wanted {
                header = Some(i + 1);
            }
            continue;
        }
        let Some((name, _)) = line.split_once('=') else {
            continue;
        };
        if name.trim_start().starts_with('#') {
            continue;
        }
        let full = if table.is_empty() {
            normal(name)
        } else {
            format!("{table}.{}", normal(name))
        };
        if full == wanted {
            return Some(i + 1);
        }
    }
    header
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::config::Profile;

    #[test]
    fn the_profiles_satisfy_every_inequality_with_exact_figures() {
        for profile in [Profile::Fast, Profile::Pve] {
            assert!(
                inequalities(&Timings::of(profile)).iter().all(|i| i.holds),
                "{profile:?}"
            );
        }
        let fast = inequalities(&Timings::of(Profile::Fast));
        assert_eq!(
            fast[0].figures,
            "lease_ms 6500 >= round_ms 1000 + watchdog_client_timeout_ms 4000 + watchdog_device_timeout_ms 1000 \
             + margin_ms 500 = 6500"
        );
        assert_eq!(
            fast[1].figures,
            "watchdog_client_timeout_ms 4000 >= round_ms 1000 + quorum recovery 1850 (6 x raft_election_ms 250 \
             + 3.5 x raft_heartbeat_ms 100) + retry gap 625 (round_ms / 2 + round_ms / 8) + margin_ms 500 = 3975"
        );
        let pve = inequalities(&Timings::of(Profile::Pve));
        assert!(pve[1].figures.ends_with("= 59750"), "{}", pve[1].figures);
    }

    #[test]
    fn a_short_lease_is_reported_violated() {
        let t = Timings {
            lease_ms: 3000,
            ..Timings::of(Profile::Fast)
        };
        let all = inequalities(&t);
        assert!(!all[0].holds);
        assert!(all[1..].iter().all(|i| i.holds));
    }

    #[test]
    fn validation_errors_get_the_line_of_their_key() {
        let text = "node = \"n1\"\nstate_dir = \"/x\"\n[watchdog]\nbackend = \"process\"\n\n[timing]\nlease_ms = 3000\n\
                    [proc.web]\ncommand = \"\"\n[resource.\"proc:db\"]\nstate = \"started\"\n";
        let err = NodeConfig::parse(text).unwrap_err();
        assert!(
            with_line(text, err.clone()).starts_with("line 7: unsafe timing"),
            "{err}"
        );
        assert_eq!(
            with_line(text, "proc.web.command: must not be empty".into()),
            "line 9: proc.web.command: must not be empty"
        );
        assert_eq!(
            with_line(
                text,
                "resource.\"proc:db\": no [proc.db] section defines what to run".into()
            ),
            "line 10: resource.\"proc:db\": no [proc.db] section defines what to run"
        );
        // Already placed, or about nothing written: unchanged.
        assert_eq!(with_line(text, "line 2: x".into()), "line 2: x");
        assert_eq!(
            with_line(text, "max_worker: must be at least 1".into()),
            "max_worker: must be at least 1"
        );
    }
}
