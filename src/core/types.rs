//! Domain vocabulary shared by the CRM, the LRM and their environments:
//! service ids, states, node states, LRM modes and exit codes.
//!
//! Serialized names follow upstream (`request_stop`, `wait_for_agent_lock`, ...)
//! so that status files and logs stay diffable against pve-ha-manager.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Virtual or wall-clock time in whole seconds. The core never reads a clock:
/// every round receives `now` from its environment.
pub type Time = i64;

/// A cluster node name (`node1`).
pub type NodeName = String;

/// The CRM state of one service (`manager_status.service_status[sid].state`).
/// Ordered by lifecycle, not alphabetically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceState {
    /// The service must start on `node`; the next round turns this into `started`.
    RequestStart,
    /// Rebalance-on-start: start the service on `target` instead of `node`.
    RequestStartBalance,
    /// The service should run on `node`; the LRM keeps it running.
    Started,
    /// The LRM is asked to stop the service.
    RequestStop,
    /// Stopped, and kept stopped by the LRM.
    Stopped,
    /// Online migration to `target` requested.
    Migrate,
    /// Offline move (stop, move, start) to `target` requested.
    Relocate,
    /// The node of the service must be fenced before anything else happens.
    Fence,
    /// The node was fenced; pick a new node for the service.
    Recovery,
    /// Frozen: the LRM of `node` restarts or the stack is disarmed; nothing moves.
    Freeze,
    /// Needs manual intervention; only `disabled` leaves it.
    Error,
}

impl ServiceState {
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceState::RequestStart => "request_start",
            ServiceState::RequestStartBalance => "request_start_balance",
            ServiceState::Started => "started",
            ServiceState::RequestStop => "request_stop",
            ServiceState::Stopped => "stopped",
            ServiceState::Migrate => "migrate",
            ServiceState::Relocate => "relocate",
            ServiceState::Fence => "fence",
            ServiceState::Recovery => "recovery",
            ServiceState::Freeze => "freeze",
            ServiceState::Error => "error",
        }
    }
}

impl fmt::Display for ServiceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The state an administrator requested for a service (resources.cfg `state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestState {
    Started,
    Stopped,
    Disabled,
    Ignored,
}

impl RequestState {
    /// Parses a configured state; `enabled` is upstream's alias of `started`.
    pub fn parse(text: &str) -> Option<RequestState> {
        match text {
            "started" | "enabled" => Some(RequestState::Started),
            "stopped" => Some(RequestState::Stopped),
            "disabled" => Some(RequestState::Disabled),
            "ignored" => Some(RequestState::Ignored),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RequestState::Started => "started",
            RequestState::Stopped => "stopped",
            RequestState::Disabled => "disabled",
            RequestState::Ignored => "ignored",
        }
    }
}

/// HA state of a node as the master sees it (`manager_status.node_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NodeState {
    /// Member of the quorate partition.
    Online,
    /// Member, but its LRM is in maintenance mode: not used for placement.
    Maintenance,
    /// Not an online member; may still be running. Initial state.
    Unknown,
    /// Must be fenced before its services can be recovered.
    Fence,
    /// Vanished from the membership list.
    Gone,
}

impl NodeState {
    pub fn as_str(self) -> &'static str {
        match self {
            NodeState::Online => "online",
            NodeState::Maintenance => "maintenance",
            NodeState::Unknown => "unknown",
            NodeState::Fence => "fence",
            NodeState::Gone => "gone",
        }
    }
}

impl fmt::Display for NodeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// LRM mode, written to `lrm_status.mode` and read by the CRM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrmMode {
    Active,
    /// Daemon restart, or reboot/freeze shutdown: the CRM freezes services.
    Restart,
    /// Node poweroff with failover semantics.
    Shutdown,
    /// Manual maintenance or the migrate policy: the CRM moves services away.
    Maintenance,
    /// The HA stack is disarmed.
    Disarm,
    /// No lrm_status could be read (real clusters only).
    Unknown,
}

impl LrmMode {
    pub fn as_str(self) -> &'static str {
        match self {
            LrmMode::Active => "active",
            LrmMode::Restart => "restart",
            LrmMode::Shutdown => "shutdown",
            LrmMode::Maintenance => "maintenance",
            LrmMode::Disarm => "disarm",
            LrmMode::Unknown => "unknown",
        }
    }
}

impl fmt::Display for LrmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Result codes of a resource agent action (upstream `Tools.pm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "i32", from = "i32")]
pub enum ExitCode {
    Success,
    Error,
    /// Internal: the LRM retries the same command (restart policy).
    TryAgain,
    WrongNode,
    UnknownServiceType,
    UnknownCommand,
    InvalidParameter,
    UnknownService,
    /// Rebalance-on-start skipped because the service already runs.
    Ignored,
    /// Any other code an agent returned.
    Other(i32),
}

impl From<ExitCode> for i32 {
    fn from(code: ExitCode) -> i32 {
        match code {
            ExitCode::Success => 0,
            ExitCode::Error => 1,
            ExitCode::TryAgain => 2,
            ExitCode::WrongNode => 3,
            ExitCode::UnknownServiceType => 4,
            ExitCode::UnknownCommand => 5,
            ExitCode::InvalidParameter => 6,
            ExitCode::UnknownService => 7,
            ExitCode::Ignored => 8,
            ExitCode::Other(n) => n,
        }
    }
}

impl From<i32> for ExitCode {
    fn from(code: i32) -> ExitCode {
        match code {
            0 => ExitCode::Success,
            1 => ExitCode::Error,
            2 => ExitCode::TryAgain,
            3 => ExitCode::WrongNode,
            4 => ExitCode::UnknownServiceType,
            5 => ExitCode::UnknownCommand,
            6 => ExitCode::InvalidParameter,
            7 => ExitCode::UnknownService,
            8 => ExitCode::Ignored,
            n => ExitCode::Other(n),
        }
    }
}

impl fmt::Display for ExitCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", i32::from(*self))
    }
}

/// Splits a service id `type:name` into its parts. Returns `None` for an id
/// without a type prefix or with an empty name.
pub fn split_sid(sid: &str) -> Option<(&str, &str)> {
    let (kind, name) = sid.split_once(':')?;
    let kind_ok = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase());
    let name_ok = !name.is_empty() && !name.chars().any(|c| c.is_whitespace() || c == ':');
    (kind_ok && name_ok).then_some((kind, name))
}

/// The service type of a valid sid (`vm` for `vm:101`).
pub fn sid_type(sid: &str) -> &str {
    split_sid(sid).map(|(kind, _)| kind).unwrap_or("")
}

/// Joins node names as upstream prints lists: `a, b`.
pub fn join_nodes(nodes: &[NodeName]) -> String {
    nodes.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_split_into_type_and_name() {
        assert_eq!(split_sid("vm:101"), Some(("vm", "101")));
        assert_eq!(split_sid("fa:1001"), Some(("fa", "1001")));
        assert_eq!(split_sid("vm101"), None);
        assert_eq!(split_sid(":101"), None);
        assert_eq!(split_sid("vm:"), None);
        assert_eq!(split_sid("VM:101"), None);
    }

    #[test]
    fn exit_codes_round_trip_through_integers() {
        for n in -1..12 {
            assert_eq!(i32::from(ExitCode::from(n)), n);
        }
        assert_eq!(ExitCode::from(3), ExitCode::WrongNode);
    }

    #[test]
    fn enabled_is_an_alias_of_started() {
        assert_eq!(RequestState::parse("enabled"), Some(RequestState::Started));
        assert_eq!(RequestState::parse("bogus"), None);
    }
}

/// A configuration id (group, rule): a letter, then letters, digits, `-`
/// or `_`, at least two characters.
pub fn is_config_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && id.len() >= 2
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// A resource name (the VMID of `vm:`/`ct:`): `^[1-9][0-9]+$`.
pub fn is_resource_name(name: &str) -> bool {
    name.len() >= 2 && name.bytes().all(|b| b.is_ascii_digit()) && !name.starts_with('0')
}

/// A node name as a host name label: 1-63 letters, digits or `-`, not
/// starting or ending with `-`.
pub fn valid_node_name(node: &str) -> bool {
    !node.is_empty()
        && node.len() <= 63
        && node.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && !node.starts_with('-')
        && !node.ends_with('-')
}
