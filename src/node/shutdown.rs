//! How long the daemon's shutdown may take.
//!
//! On SIGTERM the LRM stops or freezes its services (the shutdown policy)
//! and exits, then the CRM; each step needs the store. When the store
//! cannot write (a read-only or full disk, a lost quorum that never
//! returns) those steps never finish, and a daemon that waits for them
//! never exits. So the shutdown has a hard deadline, after which the
//! daemon exits anyway: long enough for every job an agent may still be
//! running to end by its own limit, plus a lease and ten rounds for the
//! CRM to move or freeze what the LRM leaves. An LRM that had not exited
//! by then is still armed, so its watchdog (kernel device or fence guard)
//! fences the node: no service outlives a daemon that gave up.

use std::time::Duration;

use tokio::sync::mpsc::UnboundedReceiver;

use super::config::{GuestAgentConfig, GuestKind, NodeConfig};
use crate::core::watchdog::Client;

/// Whether `program` is an executable file in `PATH`.
pub fn program_installed(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// The `vm`/`ct` agents a node runs: the configured ones, else upstream's
/// defaults where `installed(qm|pct)` says the program is there.
pub fn guest_agents(config: &NodeConfig, installed: impl Fn(&str) -> bool) -> Vec<GuestAgentConfig> {
    [(GuestKind::Vm, &config.vm_agent), (GuestKind::Ct, &config.ct_agent)]
        .into_iter()
        .filter_map(|(kind, configured)| {
            configured.clone().or_else(|| {
                installed(kind.default_program()).then(|| GuestAgentConfig::defaults(kind, kind.default_program()))
            })
        })
        .collect()
}

/// The longest a single agent job may run, in seconds, by the limits the
/// configuration gives (a start followed by its check, a shutdown followed
/// by a hard stop, a migration).
fn longest_job_secs(config: &NodeConfig, guests: &[GuestAgentConfig]) -> u64 {
    let procs = config.proc_services.values().map(|p| {
        p.start_timeout_secs
            .max(p.stop_timeout_secs)
            .saturating_add(p.health_timeout_secs)
    });
    let scripts = config
        .script_services
        .values()
        .map(|s| s.timeout_secs.saturating_add(s.monitor_timeout_secs));
    let guests = guests.iter().map(|g| {
        g.shutdown_timeout_secs
            .saturating_add(g.timeout_secs)
            .max(g.migrate_timeout_secs)
            .saturating_add(g.timeout_secs)
    });
    procs.chain(scripts).chain(guests).max().unwrap_or(0)
}

/// The hard deadline of a shutdown (see the module documentation):
/// the lease, ten rounds and the longest agent job.
pub fn deadline(config: &NodeConfig, guests: &[GuestAgentConfig]) -> Duration {
    let t = &config.timings;
    let ms = t
        .lease_ms
        .saturating_add(t.round_ms.saturating_mul(10))
        .saturating_add(longest_job_secs(config, guests).saturating_mul(1000));
    Duration::from_millis(ms)
}

/// Waits until the LRM and the CRM both reported their exit on `exits`,
/// at most `deadline`; `lrm_exited` runs when the LRM is out (the caller
/// then asks the CRM to go: the LRM needs the master to freeze or move its
/// services first). `true` if both exited in time.
pub async fn wait_for_exits(
    exits: &mut UnboundedReceiver<Client>,
    deadline: Duration,
    mut lrm_exited: impl FnMut(),
) -> bool {
    let waiting = async {
        let mut exited = Vec::new();
        while exited.len() < 2 {
            match exits.recv().await {
                Some(Client::Lrm) => {
                    exited.push(Client::Lrm);
                    lrm_exited();
                }
                Some(client) => exited.push(client),
                // Nobody left to report: nothing more to wait for.
                None => break,
            }
        }
    };
    tokio::time::timeout(deadline, waiting).await.is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_wait_ends_at_the_deadline_if_an_exit_never_comes() {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tx.send(Client::Lrm).unwrap();
        let mut crm_asked = 0;
        let started = tokio::time::Instant::now();
        let done = wait_for_exits(&mut rx, Duration::from_secs(56), || crm_asked += 1).await;
        assert!(!done, "the CRM never exited");
        assert_eq!(crm_asked, 1);
        assert_eq!(started.elapsed(), Duration::from_secs(56));
        // Both exits in time.
        tx.send(Client::Lrm).unwrap();
        tx.send(Client::Crm).unwrap();
        assert!(wait_for_exits(&mut rx, Duration::from_secs(1), || {}).await);
    }

    const BASE: &str = "node = \"n1\"\nstate_dir = \"/tmp/x\"\n[watchdog]\nbackend = \"process\"\n";

    #[test]
    fn the_deadline_covers_the_lease_ten_rounds_and_the_longest_job() {
        let config = NodeConfig::parse(BASE).unwrap();
        // fast profile: 6.5 s lease, 1 s rounds, no services.
        let base = Duration::from_millis(16_500);
        assert_eq!(deadline(&config, &[]), base);
        let text = format!(
            "{BASE}[proc.web]\ncommand = \"x\"\nstop_timeout_secs = 100\n\
             [script.db]\npath = \"/bin/true\"\ntimeout_secs = 20\n"
        );
        let config = NodeConfig::parse(&text).unwrap();
        // proc: max(start 30, stop 100) + health 10 = 110 s.
        assert_eq!(deadline(&config, &[]), base + Duration::from_secs(110));
        let vm = GuestAgentConfig::defaults(GuestKind::Vm, "qm");
        // a VM: migration 3600 s, then a status 120 s.
        assert_eq!(deadline(&config, &[vm]), base + Duration::from_secs(3720));
    }

    #[test]
    fn guest_agents_are_the_configured_or_the_installed_ones() {
        let config = NodeConfig::parse(BASE).unwrap();
        assert!(guest_agents(&config, |_| false).is_empty());
        let both = guest_agents(&config, |_| true);
        assert_eq!(both.len(), 2);
        assert_eq!(both[0].kind, GuestKind::Vm);
        let config = NodeConfig::parse(&format!("{BASE}[agent.ct]\ncommand = \"/opt/pct\"\n")).unwrap();
        let only_ct = guest_agents(&config, |_| false);
        assert_eq!(only_ct.len(), 1);
        assert_eq!(only_ct[0].kind, GuestKind::Ct);
    }
}
