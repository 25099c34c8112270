//! Cluster membership on disk and the lifecycle commands behind
//! `hactor cluster init | add-node | join | remove-node | status`.
//!
//! A member keeps under `<state_dir>/cluster/`: `cluster.json` (cluster
//! name, this node's Raft id, whether it bootstraps the cluster),
//! `node.pem` / `node.key` (its certificate from the cluster CA), `ca.pem`,
//! and on the node that created the cluster (or wherever the operator
//! keeps it) `ca.key`. Keys are written owner-only.
//!
//! Joining: on a member holding the CA key, `add-node NAME --out FILE`
//! issues NAME a certificate and writes a join bundle (keep it secret: it
//! holds the new node's key). On the new node, `join --bundle FILE` asks
//! the cluster's leader to admit it, and its daemon then catches up and
//! becomes a voter.
//!
//! Recovering a member whose Raft state is damaged or lost (its daemon
//! refuses to start and says so): `reset-local` moves `<state_dir>/raft`
//! aside, has the cluster remove the member and admit it again as a
//! learner under a new Raft id (same name, certificate and address), and
//! leaves an empty Raft state; its daemon then catches up from the others
//! and becomes a voter. A new id means no other member can confuse the
//! empty log with the member's old one.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::config::NodeConfig;
use crate::net::cluster::ask;
use crate::net::peer::{ClusterView, PeerReply, PeerRequest, Refusal};
use crate::net::quic::TransportError;
use crate::net::raft::log_store::LogStore;
use crate::net::raft::{NodeId, RESET_HINT};
use crate::net::tls::{ClusterCa, NodeIdentity};
use crate::net::transport::Transport;

/// This node's membership record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInfo {
    pub cluster: String,
    pub node: String,
    pub id: NodeId,
    /// The node that created the cluster initializes Raft on first start.
    pub bootstrap: bool,
}

/// What `add-node` hands to a new node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinBundle {
    pub cluster: String,
    pub identity: NodeIdentity,
    /// Members to ask first: name → QUIC address.
    pub seeds: BTreeMap<String, String>,
}

fn dir(config: &NodeConfig) -> PathBuf {
    config.state_dir.join("cluster")
}

fn write_file(path: &Path, text: &str, secret: bool) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    if secret {
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.sync_all())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// The address peers reach this node at (required in a cluster).
pub fn listen_addr(config: &NodeConfig) -> Result<SocketAddr, String> {
    let addr = config
        .listen
        .ok_or("listen: a cluster member needs the address its peers reach it at (e.g. listen = \"10.0.0.1:7400\")")?;
    if addr.ip().is_unspecified() || addr.port() == 0 {
        return Err(format!(
            "listen: '{addr}' is not an address peers can reach; give this node's own address and a fixed port"
        ));
    }
    Ok(addr)
}

/// This node's membership and identity, if it is in a cluster.
pub fn load(config: &NodeConfig) -> Result<Option<(ClusterInfo, NodeIdentity)>, String> {
    let dir = dir(config);
    let info_path = dir.join("cluster.json");
    if !info_path.exists() {
        return Ok(None);
    }
    let info: ClusterInfo =
        serde_json::from_str(&read(&info_path)?).map_err(|e| format!("{}: {e}", info_path.display()))?;
    if info.node != config.node {
        return Err(format!(
            "{}: this state directory belongs to node '{}', the configuration names '{}'",
            info_path.display(),
            info.node,
            config.node
        ));
    }
    let identity = NodeIdentity {
        node: info.node.clone(),
        cert_pem: read(&dir.join("node.pem"))?,
        key_pem: read(&dir.join("node.key"))?,
        ca_pem: read(&dir.join("ca.pem"))?,
    };
    Ok(Some((info, identity)))
}

fn refuse_existing(config: &NodeConfig) -> Result<(), String> {
    if let Some((info, _)) = load(config)? {
        return Err(format!(
            "node '{}' is already a member of cluster '{}' ({}); remove {} to start over",
            info.node,
            info.cluster,
            dir(config).display(),
            dir(config).display()
        ));
    }
    Ok(())
}

fn save(config: &NodeConfig, info: &ClusterInfo, identity: &NodeIdentity) -> Result<(), String> {
    let dir = dir(config);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    write_file(&dir.join("node.pem"), &identity.cert_pem, false)?;
    write_file(&dir.join("node.key"), &identity.key_pem, true)?;
    write_file(&dir.join("ca.pem"), &identity.ca_pem, false)?;
    let json = serde_json::to_string_pretty(info).map_err(|e| e.to_string())?;
    write_file(&dir.join("cluster.json"), &json, false)?;
    // A member's Raft state exists from the start, so a later start can
    // tell a lost one from a new one.
    let raft = raft_dir(config);
    LogStore::create(&raft).map_err(|e| format!("{}: {e}", raft.display()))
}

/// Where a member keeps its Raft state.
pub fn raft_dir(config: &NodeConfig) -> PathBuf {
    config.state_dir.join("raft")
}

/// Refuses a member whose Raft state is gone (its directory or log lost):
/// starting it would make an empty voter, or re-create the cluster.
pub fn check_raft_state(config: &NodeConfig) -> Result<(), String> {
    let log = raft_dir(config).join("log");
    if log.exists() {
        return Ok(());
    }
    Err(format!(
        "{}: missing, but {} says this node is a cluster member: its Raft state was lost; {RESET_HINT}",
        log.display(),
        dir(config).join("cluster.json").display()
    ))
}

/// `hactor cluster init`: a new cluster whose first member is this node.
pub fn init(config: &NodeConfig, cluster: &str) -> Result<ClusterInfo, String> {
    listen_addr(config)?;
    refuse_existing(config)?;
    if !crate::net::tls::valid_node_name(cluster) {
        return Err(format!(
            "invalid cluster name '{cluster}' ({})",
            crate::net::tls::NODE_NAME_RULE
        ));
    }
    let ca = ClusterCa::generate(cluster).map_err(|e| e.to_string())?;
    let identity = ca.issue(&config.node).map_err(|e| e.to_string())?;
    let info = ClusterInfo {
        cluster: cluster.to_string(),
        node: config.node.clone(),
        id: 1,
        bootstrap: true,
    };
    save(config, &info, &identity)?;
    write_file(&dir(config).join("ca.key"), &ca.key_pem, true)?;
    Ok(info)
}

/// `hactor cluster add-node NAME --out FILE`: issues `name` its
/// certificate and writes the join bundle.
pub fn add_node(config: &NodeConfig, name: &str, out: &Path) -> Result<(), String> {
    let Some((info, identity)) = load(config)? else {
        return Err("this node is not in a cluster (run `hactor cluster init` or `join` first)".into());
    };
    let key_path = dir(config).join("ca.key");
    if !key_path.exists() {
        return Err(format!(
            "{} not found: run add-node on the node that holds the cluster CA key",
            key_path.display()
        ));
    }
    let ca = ClusterCa {
        cluster: info.cluster.clone(),
        cert_pem: identity.ca_pem.clone(),
        key_pem: read(&key_path)?,
    };
    if name == config.node {
        return Err(format!("'{name}' is this node"));
    }
    let issued = ca.issue(name).map_err(|e| e.to_string())?;
    let mut seeds = BTreeMap::from([(config.node.clone(), listen_addr(config)?.to_string())]);
    for (peer, addr) in &config.peers {
        seeds.insert(peer.clone(), addr.to_string());
    }
    // Every current member, if the local daemon runs and can tell.
    if let Ok(Ok(view)) = actix::System::new()
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(2), status(config)).await })
    {
        for (name, addr, _) in view.members {
            seeds.insert(name, addr);
        }
    }
    let bundle = JoinBundle {
        cluster: info.cluster,
        identity: issued,
        seeds,
    };
    let json = serde_json::to_string_pretty(&bundle).map_err(|e| e.to_string())?;
    write_file(out, &json, true)
}

fn client_transport(identity: &NodeIdentity, towards: SocketAddr) -> Result<Transport, String> {
    let local: SocketAddr = if towards.is_ipv4() {
        "0.0.0.0:0".parse().expect("literal address")
    } else {
        "[::]:0".parse().expect("literal address")
    };
    Transport::bind(local, identity).map_err(|e| e.to_string())
}

fn explain(peer: &str, e: &TransportError) -> String {
    let text = e.to_string();
    if text.contains("certificate") || text.contains("UnknownIssuer") || text.contains("BadSignature") {
        format!("{peer} refused this node's certificate: is the bundle from this cluster's CA? ({text})")
    } else {
        text
    }
}

/// `hactor cluster join --bundle FILE`: asks the cluster to admit this
/// node, then records the membership (the daemon does the rest).
pub async fn join(config: &NodeConfig, bundle: &JoinBundle) -> Result<ClusterInfo, String> {
    let listen = listen_addr(config)?;
    refuse_existing(config)?;
    if bundle.identity.node != config.node {
        return Err(format!(
            "the bundle was issued for node '{}', this node is '{}'",
            bundle.identity.node, config.node
        ));
    }
    let id = ask_admission(config, &bundle.identity, &bundle.cluster, bundle.seeds.clone(), listen).await?;
    let info = ClusterInfo {
        cluster: bundle.cluster.clone(),
        node: config.node.clone(),
        id,
        bootstrap: false,
    };
    save(config, &info, &bundle.identity)?;
    Ok(info)
}

/// Asks the members `seeds` (name → address), following leader hints,
/// to admit this node as a learner at `listen`; returns its Raft id.
async fn ask_admission(
    config: &NodeConfig,
    identity: &NodeIdentity,
    cluster: &str,
    seeds: BTreeMap<String, String>,
    listen: SocketAddr,
) -> Result<NodeId, String> {
    /// Asks again while another membership change is committed (about 10 s).
    const BUSY_RETRIES: usize = 40;
    let mut queue: Vec<(String, String)> = seeds.into_iter().collect();
    let mut errors = Vec::new();
    let mut hops = 0;
    let mut busy = 0;
    let mut asked = std::collections::BTreeSet::new();
    while let Some((peer, addr)) = queue.pop() {
        hops += 1;
        if hops > 20 {
            break;
        }
        asked.insert(peer.clone());
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            errors.push(format!("{peer}: bad address '{addr}'"));
            continue;
        };
        let transport = client_transport(identity, addr)?;
        let request = PeerRequest::Join {
            name: config.node.clone(),
            addr: listen.to_string(),
        };
        let reply = ask(&transport, &peer, addr, request).await;
        transport.close();
        match reply {
            Ok(PeerReply::Joined(Ok(id))) => return Ok(id),
            Ok(PeerReply::Joined(Err(Refusal::NotLeader(Some(hint))))) => {
                // The hint may be stale (a leader that just died): ask it
                // once, and go on with the other seeds after.
                if !asked.contains(&hint.name) {
                    queue.insert(0, (peer.clone(), addr.to_string()));
                    queue.push((hint.name, hint.addr));
                } else {
                    errors.push(format!("{peer}: no leader reachable (the cluster has no quorum?)"));
                }
            }
            Ok(PeerReply::Joined(Err(Refusal::NotLeader(None)))) => {
                errors.push(format!("{peer}: no leader (the cluster has no quorum?)"));
            }
            // Another membership change (a member's promotion) is still
            // being committed: transient, ask again shortly.
            Ok(PeerReply::Joined(Err(Refusal::Failed(e))))
                if e.contains("undergoing a configuration change") && busy < BUSY_RETRIES =>
            {
                busy += 1;
                hops -= 1;
                tokio::time::sleep(std::time::Duration::from_millis(250)).await;
                queue.push((peer, addr.to_string()));
            }
            Ok(PeerReply::Joined(Err(Refusal::Failed(e)))) => return Err(format!("{peer} refused: {e}")),
            Ok(_) => errors.push(format!("{peer}: unexpected reply")),
            Err(e) => errors.push(format!("{peer}: {}", explain(&peer, &e))),
        }
    }
    Err(format!(
        "could not join cluster '{cluster}' (no member reachable, or no quorum to admit a node): {}",
        errors.join("; ")
    ))
}

/// Parses `--peer NAME=ADDRESS`.
pub fn parse_peer(text: &str) -> Result<(String, SocketAddr), String> {
    let (name, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("--peer '{text}': expected NAME=ADDRESS"))?;
    if !crate::net::tls::valid_node_name(name) {
        return Err(format!("--peer '{text}': invalid node name '{name}'"));
    }
    let addr = addr
        .parse()
        .map_err(|e| format!("--peer '{text}': address '{addr}': {e}"))?;
    Ok((name.to_string(), addr))
}

/// What `reset-local` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetOutcome {
    pub info: ClusterInfo,
    /// Where the old Raft state was moved (if there was one).
    pub moved_to: Option<PathBuf>,
}

/// `hactor cluster reset-local [--peer NAME=ADDR]...`: discards this
/// member's Raft state (moves it aside) and has the cluster admit it
/// again as a learner under a new id; membership identity and
/// certificates stay. Its daemon must be stopped. The other members are
/// found in the configuration's `peers`, in `peers` given here and in
/// whatever of the local Raft state is still intact. Safe to run again
/// after a failure: a member already removed is admitted again.
pub async fn reset_local(config: &NodeConfig, peers: &[(String, SocketAddr)]) -> Result<ResetOutcome, String> {
    let Some((info, identity)) = load(config)? else {
        return Err("this node is not in a cluster: there is no Raft state to reset".into());
    };
    let listen = listen_addr(config)?;
    if let Err(e) = std::net::UdpSocket::bind(listen) {
        return Err(format!(
            "cannot bind {listen} ({e}): is this node's daemon still running? Stop it first"
        ));
    }
    let raft = raft_dir(config);
    // The members named in this Raft state, or in one an earlier attempt
    // moved aside.
    let mut seeds = BTreeMap::new();
    let olds = std::fs::read_dir(&config.state_dir)
        .map(|dir| {
            dir.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with("raft.discarded-"))
                .map(|e| e.path())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    for dir in olds.iter().chain([&raft]) {
        for member in crate::net::raft::known_members(dir) {
            seeds.insert(member.name, member.addr);
        }
    }
    for (name, addr) in config
        .peers
        .iter()
        .map(|(n, a)| (n.clone(), *a))
        .chain(peers.iter().cloned())
    {
        seeds.insert(name, addr.to_string());
    }
    seeds.remove(&config.node);
    if seeds.is_empty() {
        return Err(format!(
            "no other member of cluster '{}' is known (the local Raft state names none): list them under \
             [peers] in the configuration or pass --peer NAME=ADDRESS",
            info.cluster
        ));
    }
    // First discard: from here on the daemon refuses to start until the
    // reset is complete, so an empty log never runs under the old id.
    let moved_to = if raft.exists() {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = config.state_dir.join(format!("raft.discarded-{stamp}"));
        std::fs::rename(&raft, &to).map_err(|e| format!("moving {} aside: {e}", raft.display()))?;
        Some(to)
    } else {
        None
    };
    remove_self(config, &identity, &seeds).await?;
    let id = ask_admission(config, &identity, &info.cluster, seeds, listen).await?;
    let info = ClusterInfo {
        id,
        bootstrap: false,
        ..info
    };
    save(config, &info, &identity)?;
    Ok(ResetOutcome { info, moved_to })
}

/// Asks the members `seeds` to remove this node (a node that is no longer
/// a member counts as removed).
async fn remove_self(
    config: &NodeConfig,
    identity: &NodeIdentity,
    seeds: &BTreeMap<String, String>,
) -> Result<(), String> {
    let mut errors = Vec::new();
    for (peer, addr) in seeds {
        let Ok(addr) = addr.parse::<SocketAddr>() else {
            errors.push(format!("{peer}: bad address '{addr}'"));
            continue;
        };
        let transport = client_transport(identity, addr)?;
        let request = PeerRequest::Remove {
            name: config.node.clone(),
        };
        let reply = ask(&transport, peer, addr, request).await;
        transport.close();
        match reply {
            Ok(PeerReply::Done(Ok(()))) => return Ok(()),
            Ok(PeerReply::Done(Err(Refusal::Failed(e)))) if e.contains("is not a cluster member") => return Ok(()),
            Ok(PeerReply::Done(Err(e))) => errors.push(format!("{peer}: {e}")),
            Ok(_) => errors.push(format!("{peer}: unexpected reply")),
            Err(e) => errors.push(format!("{peer}: {}", explain(peer, &e))),
        }
    }
    Err(format!(
        "the cluster could not remove this node's old Raft identity (no member reachable, or no quorum); \
         run reset-local again once it can: {}",
        errors.join("; ")
    ))
}

/// Sends `request` to this node's own daemon, as this node.
pub async fn ask_local(config: &NodeConfig, request: PeerRequest) -> Result<PeerReply, String> {
    let Some((_, identity)) = load(config)? else {
        return Err("this node is not in a cluster".into());
    };
    let addr = listen_addr(config)?;
    let transport = client_transport(&identity, addr)?;
    let reply = ask(&transport, &config.node, addr, request)
        .await
        .map_err(|e| format!("the local daemon at {addr} does not answer: {e}"));
    transport.close();
    reply
}

/// `hactor cluster remove-node NAME`.
pub async fn remove_node(config: &NodeConfig, name: &str) -> Result<(), String> {
    match ask_local(config, PeerRequest::Remove { name: name.to_string() }).await? {
        PeerReply::Done(Ok(())) => Ok(()),
        PeerReply::Done(Err(e)) => Err(e.to_string()),
        _ => Err("unexpected reply".into()),
    }
}

/// `hactor cluster status`.
pub async fn status(config: &NodeConfig) -> Result<ClusterView, String> {
    match ask_local(config, PeerRequest::Status).await? {
        PeerReply::Status(view) => Ok(view),
        _ => Err("unexpected reply".into()),
    }
}

/// The view as text.
pub fn render(view: &ClusterView) -> String {
    let mut out = format!(
        "node {} (id {}), term {}, leader {}, {}\n",
        view.node,
        view.id,
        view.term,
        view.leader.as_deref().unwrap_or("none"),
        if view.quorate { "quorate" } else { "NOT quorate" }
    );
    for (name, addr, voter) in &view.members {
        let role = if *voter { "voter" } else { "learner" };
        out.push_str(&format!("member {name} {addr} {role}\n"));
    }
    for (sid, node, state) in &view.services {
        out.push_str(&format!("service {sid} ({node}, {state})\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_are_parsed_or_refused_clearly() {
        assert_eq!(
            parse_peer("node1=127.0.0.1:7401").unwrap(),
            ("node1".to_string(), "127.0.0.1:7401".parse().unwrap())
        );
        assert!(parse_peer("node1").unwrap_err().contains("expected NAME=ADDRESS"));
        assert!(
            parse_peer("no de=127.0.0.1:1")
                .unwrap_err()
                .contains("invalid node name")
        );
        assert!(
            parse_peer("node1=localhost")
                .unwrap_err()
                .contains("address 'localhost'")
        );
    }
}
