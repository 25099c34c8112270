//! Commands for the CRM master (upstream's `crm_commands` queue): what an
//! operator asks of the cluster as a whole, queued in the store and
//! executed by the next manager round.
//!
//! They travel typed from the front end through the store to the manager,
//! so nothing downstream splits text again. Upstream's wire form is one
//! text line per command (`migrate vm:100 node2`); [`CrmCommand`] renders
//! exactly that line with `Display` (the manager's log lines quote it) and
//! parses it with `FromStr`, and it is stored and sent in that text form,
//! so a store written before the type existed still reads.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::types::NodeName;

/// How services are treated while HA is disarmed (`disarm-ha MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisarmMode {
    /// Services keep their state and are not touched until re-armed.
    Freeze,
    /// Services are not managed at all; their nodes are taken from the
    /// configuration again when re-armed.
    Ignore,
}

impl DisarmMode {
    /// Upstream's word for the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            DisarmMode::Freeze => "freeze",
            DisarmMode::Ignore => "ignore",
        }
    }

    /// The mode for upstream's word; `None` for any other.
    pub fn parse(word: &str) -> Option<DisarmMode> {
        match word {
            "freeze" => Some(DisarmMode::Freeze),
            "ignore" => Some(DisarmMode::Ignore),
            _ => None,
        }
    }
}

impl fmt::Display for DisarmMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a service moves live (`migrate`) or by stop and start
/// (`relocate`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveKind {
    Migrate,
    Relocate,
}

impl MoveKind {
    /// Upstream's word for the move.
    pub fn as_str(self) -> &'static str {
        match self {
            MoveKind::Migrate => "migrate",
            MoveKind::Relocate => "relocate",
        }
    }
}

/// One queued command for the CRM master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum CrmCommand {
    /// `migrate|relocate SID NODE`: move a service to `node`.
    Move {
        kind: MoveKind,
        sid: String,
        node: NodeName,
    },
    /// `stop SID TIMEOUT`: stop a service, hard after `timeout` seconds
    /// (0 stops hard at once).
    Stop { sid: String, timeout: i64 },
    /// `enable-node-maintenance NODE`.
    EnableNodeMaintenance { node: NodeName },
    /// `disable-node-maintenance NODE`.
    DisableNodeMaintenance { node: NodeName },
    /// `disarm-ha freeze|ignore`: stop HA from acting, watchdogs closed.
    DisarmHa { mode: DisarmMode },
    /// `arm-ha`: undo `disarm-ha`.
    ArmHa,
}

/// A text that is not a CRM command; says what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unable to parse crm command '{line}': {reason}")]
pub struct CrmCommandError {
    pub line: String,
    pub reason: String,
}

impl fmt::Display for CrmCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CrmCommand::Move { kind, sid, node } => write!(f, "{} {sid} {node}", kind.as_str()),
            CrmCommand::Stop { sid, timeout } => write!(f, "stop {sid} {timeout}"),
            CrmCommand::EnableNodeMaintenance { node } => write!(f, "enable-node-maintenance {node}"),
            CrmCommand::DisableNodeMaintenance { node } => write!(f, "disable-node-maintenance {node}"),
            CrmCommand::DisarmHa { mode } => write!(f, "disarm-ha {mode}"),
            CrmCommand::ArmHa => f.write_str("arm-ha"),
        }
    }
}

impl FromStr for CrmCommand {
    type Err = CrmCommandError;

    /// Parses upstream's text form; words are separated by white space.
    fn from_str(line: &str) -> Result<CrmCommand, CrmCommandError> {
        let error = |reason: String| CrmCommandError {
            line: line.to_string(),
            reason,
        };
        let words: Vec<&str> = line.split_whitespace().collect();
        Ok(match words.as_slice() {
            ["migrate", sid, node] => CrmCommand::Move {
                kind: MoveKind::Migrate,
                sid: sid.to_string(),
                node: node.to_string(),
            },
            ["relocate", sid, node] => CrmCommand::Move {
                kind: MoveKind::Relocate,
                sid: sid.to_string(),
                node: node.to_string(),
            },
            ["stop", sid, timeout] => CrmCommand::Stop {
                sid: sid.to_string(),
                timeout: timeout
                    .parse()
                    .map_err(|_| error(format!("invalid timeout '{timeout}'")))?,
            },
            ["enable-node-maintenance", node] => CrmCommand::EnableNodeMaintenance { node: node.to_string() },
            ["disable-node-maintenance", node] => CrmCommand::DisableNodeMaintenance { node: node.to_string() },
            ["disarm-ha", mode] => CrmCommand::DisarmHa {
                mode: DisarmMode::parse(mode)
                    .ok_or_else(|| error(format!("unknown mode '{mode}' (freeze or ignore)")))?,
            },
            ["arm-ha"] => CrmCommand::ArmHa,
            [] => return Err(error("empty command".to_string())),
            [verb, ..] => {
                return Err(error(format!("unknown command '{verb}' or wrong number of arguments")));
            }
        })
    }
}

impl From<CrmCommand> for String {
    fn from(command: CrmCommand) -> String {
        command.to_string()
    }
}

impl TryFrom<String> for CrmCommand {
    type Error = CrmCommandError;

    fn try_from(line: String) -> Result<CrmCommand, CrmCommandError> {
        line.parse()
    }
}

/// Arbitrary commands for property tests of the store and its transport.
#[cfg(test)]
pub fn any_command() -> impl proptest::strategy::Strategy<Value = CrmCommand> {
    use proptest::prelude::*;
    let sid = "(vm|ct):[0-9]{1,4}";
    let node = "node[1-9]";
    prop_oneof![
        (any::<bool>(), sid, node).prop_map(|(migrate, sid, node)| CrmCommand::Move {
            kind: if migrate { MoveKind::Migrate } else { MoveKind::Relocate },
            sid,
            node,
        }),
        (sid, any::<i64>()).prop_map(|(sid, timeout)| CrmCommand::Stop { sid, timeout }),
        node.prop_map(|node| CrmCommand::EnableNodeMaintenance { node }),
        node.prop_map(|node| CrmCommand::DisableNodeMaintenance { node }),
        Just(CrmCommand::DisarmHa {
            mode: DisarmMode::Freeze
        }),
        Just(CrmCommand::DisarmHa {
            mode: DisarmMode::Ignore
        }),
        Just(CrmCommand::ArmHa),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_round_trips_through_upstream_text() {
        let commands = [
            (
                "migrate vm:100 node2",
                CrmCommand::Move {
                    kind: MoveKind::Migrate,
                    sid: "vm:100".into(),
                    node: "node2".into(),
                },
            ),
            (
                "relocate ct:7 node3",
                CrmCommand::Move {
                    kind: MoveKind::Relocate,
                    sid: "ct:7".into(),
                    node: "node3".into(),
                },
            ),
            (
                "stop vm:100 0",
                CrmCommand::Stop {
                    sid: "vm:100".into(),
                    timeout: 0,
                },
            ),
            (
                "enable-node-maintenance node1",
                CrmCommand::EnableNodeMaintenance { node: "node1".into() },
            ),
            (
                "disable-node-maintenance node1",
                CrmCommand::DisableNodeMaintenance { node: "node1".into() },
            ),
            (
                "disarm-ha freeze",
                CrmCommand::DisarmHa {
                    mode: DisarmMode::Freeze,
                },
            ),
            (
                "disarm-ha ignore",
                CrmCommand::DisarmHa {
                    mode: DisarmMode::Ignore,
                },
            ),
            ("arm-ha", CrmCommand::ArmHa),
        ];
        for (text, command) in commands {
            assert_eq!(text.parse::<CrmCommand>().as_ref(), Ok(&command), "{text}");
            assert_eq!(command.to_string(), text);
            let json = serde_json::to_string(&command).unwrap();
            assert_eq!(json, format!("\"{text}\""), "stored as upstream's line");
            assert_eq!(serde_json::from_str::<CrmCommand>(&json).unwrap(), command);
        }
    }

    #[test]
    fn bad_text_is_an_error_that_names_the_problem() {
        for (text, reason) in [
            ("", "empty command"),
            ("dance vm:100", "unknown command 'dance'"),
            ("migrate vm:100", "unknown command 'migrate' or wrong number"),
            ("stop vm:100 soon", "invalid timeout 'soon'"),
            ("disarm-ha sleep", "unknown mode 'sleep'"),
            ("arm-ha now", "unknown command 'arm-ha'"),
        ] {
            let err = text.parse::<CrmCommand>().unwrap_err();
            assert!(err.reason.contains(reason), "{text}: {err}");
        }
        assert!(serde_json::from_str::<CrmCommand>("\"dance\"").is_err());
    }
}
