//! A fake fence device for local clusters (the failover benchmark and
//! the tests): `tests/fence/fake-fence-agent`, a script speaking the
//! fence-agent interface that "powers off" a node by killing its daemon
//! and its services, wired to every node through a generated fence.cfg.

use std::path::{Path, PathBuf};

/// The fake agent's source, written next to the generated fence.cfg.
pub const FAKE_AGENT: &str = include_str!("../../tests/fence/fake-fence-agent");

/// A fake fence device set up for a local cluster.
#[derive(Debug, Clone)]
pub struct FakeFence {
    /// The generated fence.cfg.
    pub config: PathBuf,
    /// Every agent call, one line each (`<unix time> <arguments>`).
    pub calls: PathBuf,
    /// Node configuration to add (`LocalSpec::extra`).
    pub extra: String,
}

/// Writes the fake agent and a fence.cfg for nodes `node1..=nodes` whose
/// state directories are `<cluster_dir>/nodeN`, into `dir` (not inside
/// `cluster_dir`, which creating the cluster wipes). `mode`: `ok`, `fail`
/// or `hang`.
pub fn setup(dir: &Path, cluster_dir: &Path, nodes: usize, mode: &str) -> Result<FakeFence, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let agent = dir.join("fake-fence-agent");
    std::fs::write(&agent, FAKE_AGENT).map_err(|e| format!("{}: {e}", agent.display()))?;
    let mut perms = std::fs::metadata(&agent).map_err(|e| e.to_string())?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&agent, perms).map_err(|e| e.to_string())?;
    let calls = dir.join("fence-calls.log");
    let _ = std::fs::remove_file(&calls);
    let mut text = format!(
        "# generated: a fake fence device for a local cluster\ndevice fake {} log={} mode={mode}\n",
        agent.display(),
        calls.display()
    );
    for i in 1..=nodes {
        text.push_str(&format!(
            "connect fake node=node{i} plug=node{i} state-dir={}\n",
            cluster_dir.join(format!("node{i}")).display()
        ));
    }
    let config = dir.join("fence.cfg");
    std::fs::write(&config, text).map_err(|e| format!("{}: {e}", config.display()))?;
    let extra = format!("\n[fence]\nconfig = \"{}\"\ntimeout_secs = 10\n", config.display());
    Ok(FakeFence { config, calls, extra })
}
