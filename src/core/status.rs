//! Shared state records: the master's `manager_status`, each node's
//! `lrm_status`, and the resource configuration as the daemons see it.
//!
//! JSON shapes follow upstream (§6.7 of the spec) so status files can be
//! exchanged with upstream tooling; unknown legacy keys are ignored on read.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::types::{ExitCode, LrmMode, NodeName, NodeState, RequestState, ServiceState, Time};

/// A pending user or CRS command attached to a service (`sd.cmd`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceCommand {
    Migrate(NodeName),
    Relocate(NodeName),
    /// Stop with a timeout in seconds; 0 means hard stop.
    Stop(i64),
}

impl Serialize for ServiceCommand {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = s.serialize_seq(Some(2))?;
        match self {
            ServiceCommand::Migrate(n) => {
                seq.serialize_element("migrate")?;
                seq.serialize_element(n)?;
            }
            ServiceCommand::Relocate(n) => {
                seq.serialize_element("relocate")?;
                seq.serialize_element(n)?;
            }
            ServiceCommand::Stop(t) => {
                seq.serialize_element("stop")?;
                seq.serialize_element(t)?;
            }
        }
        seq.end()
    }
}

impl<'de> Deserialize<'de> for ServiceCommand {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let items: Vec<serde_json::Value> = Vec::deserialize(d)?;
        let task = items.first().and_then(|v| v.as_str()).unwrap_or_default();
        let arg = items.get(1);
        let node = || arg.and_then(|v| v.as_str()).map(str::to_string);
        match task {
            "migrate" => node().map(ServiceCommand::Migrate),
            "relocate" => node().map(ServiceCommand::Relocate),
            "stop" => arg
                .and_then(|v| v.as_i64().or_else(|| v.as_str().and_then(|s| s.parse().ok())))
                .map(ServiceCommand::Stop),
            _ => None,
        }
        .ok_or_else(|| D::Error::custom(format!("invalid service command {items:?}")))
    }
}

fn is_false(b: &bool) -> bool {
    !*b
}

mod bool_as_int {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u8(u8::from(*v))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::Bool(b) => b,
            serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0) != 0.0,
            serde_json::Value::String(s) => !(s.is_empty() || s == "0"),
            _ => false,
        })
    }
}

/// One service as the master tracks it (`manager_status.service_status[sid]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceStatus {
    /// The CRM state; for the LRM it is also the requested action.
    pub state: ServiceState,
    /// The node the service is assigned to.
    pub node: NodeName,
    /// Command id; changes on every state change so an LRM result is applied once.
    #[serde(default)]
    pub uid: String,
    /// Target node of `migrate`, `relocate` and `request_start_balance`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<NodeName>,
    /// Stop timeout of a `request_stop` produced by a stop command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<i64>,
    /// Set once the LRM confirmed a start; only meaningful while `started`.
    #[serde(default, skip_serializing_if = "is_false", with = "bool_as_int")]
    pub running: bool,
    /// Nodes where a start failed (relocate policy); survives state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_nodes: Option<Vec<NodeName>>,
    /// Node to return to after its maintenance ends; survives state changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub maintenance_node: Option<NodeName>,
    /// A pending user or CRS command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<ServiceCommand>,
}

impl ServiceStatus {
    pub fn new(state: ServiceState, node: &str, uid: String) -> ServiceStatus {
        ServiceStatus {
            state,
            node: node.to_string(),
            uid,
            target: None,
            timeout: None,
            running: false,
            failed_nodes: None,
            maintenance_node: None,
            cmd: None,
        }
    }
}

/// A maintenance request for one node (`node_request[node]`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NodeRequest {
    #[serde(default, skip_serializing_if = "is_false", with = "bool_as_int")]
    pub maintenance: bool,
}

/// Disarm progress (`manager_status.disarm`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Disarm {
    /// `freeze` or `ignore`.
    pub mode: String,
    /// `disarming` until every online LRM reports mode `disarm`, then `disarmed`.
    pub state: String,
}

impl Disarm {
    pub const DISARMING: &'static str = "disarming";
    pub const DISARMED: &'static str = "disarmed";

    pub fn is_disarmed(&self) -> bool {
        self.state == Disarm::DISARMED
    }
}

/// The master's view of the cluster, written every round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManagerStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master_node: Option<NodeName>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<Time>,
    #[serde(default)]
    pub node_status: BTreeMap<NodeName, NodeState>,
    #[serde(default)]
    pub service_status: BTreeMap<String, ServiceStatus>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_request: BTreeMap<NodeName, NodeRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disarm: Option<Disarm>,
}

impl ManagerStatus {
    pub fn maintenance_requested(&self, node: &str) -> bool {
        self.node_request.get(node).is_some_and(|r| r.maintenance)
    }
}

/// The result of one LRM command, keyed by the command's uid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrmResult {
    pub sid: String,
    pub state: ServiceState,
    pub exit_code: ExitCode,
}

/// What one node's LRM publishes (`lrm_status`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrmStatus {
    pub state: String,
    pub mode: LrmMode,
    #[serde(default)]
    pub results: BTreeMap<String, LrmResult>,
    #[serde(default)]
    pub timestamp: Time,
}

/// One configured HA resource (resources.cfg), with upstream's defaults
/// applied: what the store keeps, the API edits and the core reads. The
/// defaults live here and nowhere else ([`ResourceConfig::DEFAULT_MAX_RESTART`]
/// and its neighbours, [`Default`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceConfig {
    /// The node that owns the guest; `None` when the guest does not exist.
    pub node: Option<NodeName>,
    pub state: RequestState,
    pub max_restart: u32,
    pub max_relocate: u32,
    pub failback: bool,
    pub group: Option<String>,
    /// Guest lock (`backup`, `snapshot`, ...), if any: a property of the
    /// guest, not of resources.cfg, so the store never holds one (only the
    /// simulator sets it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<String>,
    pub comment: Option<String>,
}

impl ResourceConfig {
    /// Upstream's `state` when none is configured.
    pub const DEFAULT_STATE: RequestState = RequestState::Started;
    /// Upstream's `max_restart`: one restart on the same node.
    pub const DEFAULT_MAX_RESTART: u32 = 1;
    /// Upstream's `max_relocate`: one try on another node.
    pub const DEFAULT_MAX_RELOCATE: u32 = 1;
    /// Upstream's `failback`: move back to a preferred node.
    pub const DEFAULT_FAILBACK: bool = true;

    /// A resource on `node` in `state`, every other key at its default.
    pub fn new(node: &str, state: RequestState) -> ResourceConfig {
        ResourceConfig {
            node: Some(node.to_string()),
            state,
            ..ResourceConfig::default()
        }
    }
}

impl Default for ResourceConfig {
    /// Upstream's defaults, on no node.
    fn default() -> ResourceConfig {
        ResourceConfig {
            node: None,
            state: ResourceConfig::DEFAULT_STATE,
            max_restart: ResourceConfig::DEFAULT_MAX_RESTART,
            max_relocate: ResourceConfig::DEFAULT_MAX_RELOCATE,
            failback: ResourceConfig::DEFAULT_FAILBACK,
            group: None,
            lock: None,
            comment: None,
        }
    }
}

/// All configured resources by sid.
pub type ServiceConfig = BTreeMap<String, ResourceConfig>;

/// A legacy HA group (groups.cfg).
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Member nodes with priority (higher is preferred).
    pub nodes: BTreeMap<NodeName, i64>,
    pub restricted: bool,
    pub nofailback: bool,
    pub comment: Option<String>,
}

/// All groups by id.
pub type Groups = BTreeMap<String, GroupConfig>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manager_status_reads_upstream_json_and_drops_legacy_keys() {
        let text = r#"{"master_node":"node1","relocate_tried_nodes":{},
            "node_status":{"node1":"online","node3":"fence"},
            "service_status":{"vm:101":{"state":"started","node":"node1","uid":"x","running":1,
              "cmd":["migrate","node2"],"failed_nodes":["node3"]},
              "vm:102":{"state":"request_stop","node":"node1","uid":"y","timeout":0}},
            "timestamp":100}"#;
        let ms: ManagerStatus = serde_json::from_str(text).unwrap();
        let sd = &ms.service_status["vm:101"];
        assert!(sd.running);
        assert_eq!(sd.cmd, Some(ServiceCommand::Migrate("node2".into())));
        assert_eq!(ms.node_status["node3"], NodeState::Fence);
        assert_eq!(ms.service_status["vm:102"].timeout, Some(0));
        let back = serde_json::to_value(&ms).unwrap();
        assert_eq!(back["service_status"]["vm:101"]["running"], 1);
        assert!(back.get("relocate_tried_nodes").is_none());
    }

    #[test]
    fn stop_commands_keep_their_timeout() {
        let cmd: ServiceCommand = serde_json::from_str(r#"["stop", 30]"#).unwrap();
        assert_eq!(cmd, ServiceCommand::Stop(30));
        assert!(serde_json::from_str::<ServiceCommand>(r#"["launch", 1]"#).is_err());
    }
}
