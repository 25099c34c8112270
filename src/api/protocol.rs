//! The wire protocol between `ha-manager` and the daemon.
//!
//! One connection carries one exchange: the client writes one request
//! line, the daemon answers with one response line and closes. Each line
//! is a JSON [`Frame`] `{"version": N, "body": ...}`. A request is at most
//! [`MAX_REQUEST`] bytes: the daemon reads it before it knows who asks
//! for what, and that bound protects it. A reply may be far larger (a
//! status or config of 100 000 resources is some 10-25 MB), so the
//! client reads it with its own bound, [`MAX_REPLY`]: the daemon is the
//! trusted side of the socket, and the bound only keeps a broken one from
//! exhausting the client's memory. The frame shape never changes between versions,
//! so a client and a daemon of different versions can always tell each
//! other so: a daemon answers a request of another version with an error
//! naming both versions, and a client refuses an answer of another
//! version the same way.
//!
//! JSON lines rather than a binary encoding: the messages are small, the
//! socket is local, and an administrator can talk to the daemon with
//! `socat` when the CLI is not at hand.

use serde::{Deserialize, Serialize};

/// Bump on every incompatible change of [`Request`] or [`Response`].
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line, newline included.
pub const MAX_REQUEST: usize = 4 << 20;

/// Longest response line, newline included: room for a status of about
/// four million resources.
pub const MAX_REPLY: usize = 1 << 30;

/// The envelope of every message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame<T> {
    pub version: u32,
    pub body: T,
}

/// Options of `add` and `set` (strings where the daemon checks the value,
/// so every client gets the same message).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_relocate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<String>,
}

/// Options of `groupadd` and `groupset`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofailback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Options of `rules add` and `rules set`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RuleOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `migrate` or `relocate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MoveTask {
    Migrate,
    Relocate,
}

impl MoveTask {
    pub fn as_str(self) -> &'static str {
        match self {
            MoveTask::Migrate => "migrate",
            MoveTask::Relocate => "relocate",
        }
    }
}

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "kebab-case")]
pub enum Request {
    Status {
        verbose: bool,
    },
    Config {
        kind: Option<String>,
    },
    Add {
        sid: String,
        kind: Option<String>,
        options: ResourceOptions,
    },
    Set {
        sid: String,
        options: ResourceOptions,
        delete: Vec<String>,
        digest: Option<String>,
    },
    Remove {
        sid: String,
        purge: bool,
    },
    Move {
        task: MoveTask,
        sid: String,
        node: String,
    },
    Stop {
        sid: String,
        timeout: u64,
    },
    NodeMaintenance {
        enable: bool,
        node: String,
    },
    DisarmHa {
        mode: String,
    },
    ArmHa,
    GroupConfig,
    GroupAdd {
        group: String,
        options: GroupOptions,
    },
    GroupSet {
        group: String,
        options: GroupOptions,
        delete: Vec<String>,
        digest: Option<String>,
    },
    GroupRemove {
        group: String,
    },
    RulesConfig {
        kind: Option<String>,
        resource: Option<String>,
    },
    RulesAdd {
        kind: String,
        rule: String,
        options: RuleOptions,
    },
    RulesSet {
        kind: String,
        rule: String,
        options: RuleOptions,
        delete: Vec<String>,
        digest: Option<String>,
    },
    RulesRemove {
        rule: String,
    },
    /// Which rules the feasibility checks drop and why: the stored rules
    /// (and those of legacy groups), or `rules_cfg` if given (a candidate
    /// rules.cfg text), against the cluster's members.
    RulesCheck {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rules_cfg: Option<String>,
    },
}

impl Request {
    /// Whether the request changes the store (refused without quorum).
    pub fn is_edit(&self) -> bool {
        !matches!(
            self,
            Request::Status { .. }
                | Request::Config { .. }
                | Request::GroupConfig
                | Request::RulesConfig { .. }
                | Request::RulesCheck { .. }
        )
    }
}

/// One line of `status` (upstream's `status/current` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusEntry {
    /// `quorum`, `master`, `fencing`, `lrm:<node>`, `service:<sid>`.
    pub id: String,
    /// `quorum`, `master`, `fencing`, `lrm`, `service`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The text after the type in the status output.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// Services: the verbose state; lrm: the LRM state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crm_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_state: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quorate: Option<bool>,
}

impl StatusEntry {
    pub fn new(id: &str, kind: &str, status: String) -> StatusEntry {
        StatusEntry {
            id: id.to_string(),
            kind: kind.to_string(),
            status,
            node: None,
            sid: None,
            state: None,
            crm_state: None,
            request_state: None,
            timestamp: None,
            quorate: None,
        }
    }
}

/// One configured resource with the keys that differ from the defaults
/// (`state` always), as `config` prints them. Configuration only, as
/// upstream's: where the resource runs is status (`ha-manager status`),
/// and leaving it out keeps this view, like the digest, unchanged by a
/// failover.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResourceView {
    pub sid: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failback: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_relocate: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_restart: Option<u32>,
}

/// One legacy group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupView {
    pub group: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub nodes: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nofailback: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restricted: Option<u8>,
}

/// One rule with its feasibility.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RuleView {
    pub rule: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub resources: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disable: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// `in use`, `ignored (conflicts)` or `disabled`.
    pub state: String,
    /// Why the checks drop the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// 1-based position in rules.cfg.
    pub order: usize,
}

/// A rule the feasibility checks drop, with upstream's messages in check
/// order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DroppedRule {
    pub rule: String,
    pub messages: Vec<String>,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Response {
    Status {
        entries: Vec<StatusEntry>,
        /// `--verbose`: manager status, quorum and every LRM status.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        full: Option<serde_json::Value>,
    },
    Resources {
        digest: String,
        resources: Vec<ResourceView>,
    },
    Groups {
        digest: String,
        groups: Vec<GroupView>,
    },
    Rules {
        digest: String,
        rules: Vec<RuleView>,
    },
    /// `rules check`: the dropped rules (sorted by id) out of `checked`
    /// enabled and disabled rules, against these cluster nodes.
    RulesCheck {
        nodes: Vec<String>,
        checked: usize,
        dropped: Vec<DroppedRule>,
    },
    /// An edit or command went through; `messages` are for the user.
    Done {
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        messages: Vec<String>,
    },
}

/// The body of a response frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok(Response),
    /// A one-line message for stderr.
    Error(String),
}

/// A frame as one line, newline included.
pub fn encode<T: Serialize>(body: &T) -> Vec<u8> {
    let frame = Frame {
        version: PROTOCOL_VERSION,
        body,
    };
    let mut line = serde_json::to_vec(&frame).unwrap_or_default();
    line.push(b'\n');
    line
}

/// The version of a frame, read without decoding its body.
#[derive(Deserialize)]
struct Head {
    version: Option<serde_json::Value>,
}

fn version_of(line: &[u8], limit: usize) -> Result<u32, String> {
    if line.len() > limit {
        return Err(format!("message too large ({} bytes, at most {limit})", line.len()));
    }
    let head: Head = serde_json::from_slice(line).map_err(|e| format!("malformed message - {e}"))?;
    // serde would take a struct from a JSON array too; a frame is an object.
    if line.trim_ascii_start().first() != Some(&b'{') {
        return Err("malformed message - no protocol version".into());
    }
    head.version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .and_then(|v| u32::try_from(v).ok())
        .ok_or_else(|| "malformed message - no protocol version".to_string())
}

/// Decodes the body of a frame whose version was checked.
fn body_of<T: for<'de> Deserialize<'de>>(line: &[u8], what: &str) -> Result<T, String> {
    #[derive(Deserialize)]
    struct Body<T> {
        body: T,
    }
    serde_json::from_slice::<Body<T>>(line)
        .map(|frame| frame.body)
        .map_err(|e| format!("malformed {what} - {e}"))
}

/// Reads a request line (daemon side).
pub fn decode_request(line: &[u8]) -> Result<Request, String> {
    let version = version_of(line, MAX_REQUEST)?;
    if version != PROTOCOL_VERSION {
        return Err(format!(
            "protocol version mismatch: ha-manager speaks version {version}, the daemon version {PROTOCOL_VERSION} - \
             use an ha-manager of the same release as the daemon"
        ));
    }
    body_of(line, "request")
}

/// Reads a response line (client side).
pub fn decode_response(line: &[u8]) -> Result<Outcome, String> {
    let version = version_of(line, MAX_REPLY)?;
    if version != PROTOCOL_VERSION {
        // A daemon of another version still answers in the stable frame;
        // its error text, if it sent one, says more.
        let body = body_of::<serde_json::Value>(line, "response").unwrap_or_default();
        if let Some(message) = body.get("error").and_then(serde_json::Value::as_str) {
            return Err(message.to_string());
        }
        return Err(format!(
            "protocol version mismatch: the daemon speaks version {version}, ha-manager version {PROTOCOL_VERSION} - \
             use an ha-manager of the same release as the daemon"
        ));
    }
    body_of(line, "response")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip() {
        let request = Request::Add {
            sid: "vm:100".into(),
            kind: None,
            options: ResourceOptions {
                state: Some("stopped".into()),
                max_restart: Some(2),
                ..ResourceOptions::default()
            },
        };
        let line = encode(&request);
        assert!(line.ends_with(b"\n"));
        assert_eq!(decode_request(&line).unwrap(), request);
        let outcome = Outcome::Ok(Response::Done { messages: vec![] });
        assert_eq!(decode_response(&encode(&outcome)).unwrap(), outcome);
        let error = Outcome::Error("cluster not quorate".into());
        assert_eq!(decode_response(&encode(&error)).unwrap(), error);
    }

    #[test]
    fn another_version_is_a_clear_error_both_ways() {
        let line = br#"{"version":99,"body":{"command":"status","verbose":false}}"#;
        let err = decode_request(line).unwrap_err();
        assert!(
            err.contains("protocol version mismatch") && err.contains("version 99") && err.contains("version 1"),
            "{err}"
        );
        let err = decode_response(br#"{"version":2,"body":{"ok":{"kind":"something-new"}}}"#).unwrap_err();
        assert!(err.contains("the daemon speaks version 2"), "{err}");
        let err = decode_response(br#"{"version":0,"body":{"error":"protocol version mismatch: x"}}"#).unwrap_err();
        assert_eq!(err, "protocol version mismatch: x");
    }

    #[test]
    fn malformed_and_oversized_frames_are_refused() {
        assert!(
            decode_request(b"not json")
                .unwrap_err()
                .starts_with("malformed message")
        );
        assert!(
            decode_request(br#"{"body":{}}"#)
                .unwrap_err()
                .contains("no protocol version")
        );
        assert!(
            decode_request(br#"{"version":1,"body":{"command":"launch"}}"#)
                .unwrap_err()
                .starts_with("malformed request")
        );
        let big = vec![b' '; MAX_REQUEST + 1];
        assert!(decode_request(&big).unwrap_err().contains("too large"));
        // A reply may be larger than any request.
        let mut reply = encode(&Outcome::Ok(Response::Done {
            messages: vec!["x".repeat(MAX_REQUEST)],
        }));
        assert!(reply.len() > MAX_REQUEST);
        assert!(matches!(
            decode_response(&reply),
            Ok(Outcome::Ok(Response::Done { .. }))
        ));
        reply.pop();
        assert!(decode_request(&reply).unwrap_err().contains("too large"));
    }
}
