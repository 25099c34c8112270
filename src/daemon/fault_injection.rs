//! Fault injection of a node whose configuration enables it
//! (`fault_injection = true`): files in the state directory cut the node
//! off from peers, start an election or fail the Raft log's writes, for
//! the multi-process tests and benchmarks.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::LOG_TARGET;
use crate::net::cluster::RaftStore;
use crate::net::raft::log_store::FAULT_DISK_FULL;
use crate::net::transport::Transport;

/// Testing only: `<state_dir>/fault-block` cuts this node off from the
/// peers it lists; `<state_dir>/fault-elect` (removed when seen) makes this
/// node start an election at once; while `<state_dir>/fault-disk-full`
/// exists, Raft log writes fail with ENOSPC.
pub fn spawn_fault_injection(transport: Transport, raft: RaftStore, dir: PathBuf) {
    let path = dir.join("fault-block");
    let elect = dir.join("fault-elect");
    tracing::warn!(target: LOG_TARGET, "fault injection enabled: {} cuts this node off from the peers it lists",
        path.display()
    );
    actix::spawn(async move {
        let mut blocked = std::collections::BTreeSet::<String>::new();
        loop {
            let wanted: std::collections::BTreeSet<String> = std::fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
            for peer in wanted.difference(&blocked) {
                tracing::warn!(target: LOG_TARGET, peer = %peer, "fault injection: blocking traffic");
                transport.block(peer);
            }
            for peer in blocked.difference(&wanted) {
                tracing::warn!(target: LOG_TARGET, peer = %peer, "fault injection: unblocking traffic");
                transport.unblock(peer);
            }
            blocked = wanted;
            let disk_full = dir.join("fault-disk-full").exists();
            if disk_full != FAULT_DISK_FULL.swap(disk_full, Ordering::Relaxed) {
                tracing::warn!(target: LOG_TARGET, disk_full, "fault injection: Raft log writes fail as on a full disk");
            }
            if std::fs::remove_file(&elect).is_ok() {
                tracing::warn!(target: LOG_TARGET, "fault injection: starting an election");
                raft.trigger_election().await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
}
