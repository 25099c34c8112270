//! `resources.cfg`: the HA resources (spec §6.2).
//!
//! ```text
//! vm: 100
//!     comment database
//!     failback 0
//!     group prefer_node1
//!     max_relocate 2
//!     max_restart 3
//!     state started
//!
//! ct: 101
//!     state stopped
//! ```
//!
//! (property lines are indented with a tab in the file.)
//!
//! The header is `vm: <name>` or `ct: <name>` (the sid is `vm:<name>`); the
//! name must match `^[1-9][0-9]+$` (**at least two digits**, upstream's
//! quirk). Keys: `state` (`started`, `stopped`, `enabled` = started,
//! `disabled`, `ignored`), `group` (a configuration id), `failback`
//! (boolean), `max_restart` and `max_relocate` (non-negative integers) and
//! `comment` (at most 4096 characters). Any other key, an unknown type and
//! a duplicate sid are errors (upstream drops sections of unknown type with
//! a warning, which would silently take a guest out of HA).
//!
//! [`ResourceSection`] keeps which keys were written, so the canonical text
//! is written back byte for byte; [`ResourceSection::config`] applies the
//! daemon defaults (`state=started`, `failback=1`, `max_restart=1`,
//! `max_relocate=1`). Canonical form, as [`write_resources`] writes it (the
//! layout of upstream's `write_config`): sections in the given order; per
//! section `comment` (if non-empty), then the given keys sorted
//! (`failback`, `group`, `max_relocate`, `max_restart`, `state`), booleans
//! as `0`/`1`; one blank line after every section.

use crate::core::status::{ResourceConfig, ServiceConfig};
use crate::core::types::{RequestState, split_sid};

use super::ConfigError;
use super::section::{self, Section};
use super::value::{check_comment, is_config_id, parse_bool};

/// The `state` value as written (`enabled` is kept apart from `started` so
/// that it is written back as it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfiguredState {
    Started,
    /// Upstream's alias of `started`.
    Enabled,
    Stopped,
    Disabled,
    Ignored,
}

impl ConfiguredState {
    pub fn parse(text: &str) -> Option<ConfiguredState> {
        match text {
            "started" => Some(ConfiguredState::Started),
            "enabled" => Some(ConfiguredState::Enabled),
            "stopped" => Some(ConfiguredState::Stopped),
            "disabled" => Some(ConfiguredState::Disabled),
            "ignored" => Some(ConfiguredState::Ignored),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ConfiguredState::Started => "started",
            ConfiguredState::Enabled => "enabled",
            ConfiguredState::Stopped => "stopped",
            ConfiguredState::Disabled => "disabled",
            ConfiguredState::Ignored => "ignored",
        }
    }

    /// The state the manager acts on.
    pub fn request_state(self) -> RequestState {
        match self {
            ConfiguredState::Started | ConfiguredState::Enabled => RequestState::Started,
            ConfiguredState::Stopped => RequestState::Stopped,
            ConfiguredState::Disabled => RequestState::Disabled,
            ConfiguredState::Ignored => RequestState::Ignored,
        }
    }
}

/// One resource section with the keys as given (`None` = not written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceSection {
    /// `vm:<name>` or `ct:<name>`.
    pub sid: String,
    pub state: Option<ConfiguredState>,
    pub group: Option<String>,
    pub failback: Option<bool>,
    pub max_restart: Option<u32>,
    pub max_relocate: Option<u32>,
    pub comment: Option<String>,
}

impl ResourceSection {
    /// A section with no keys (every default applies).
    pub fn new(sid: &str) -> ResourceSection {
        ResourceSection {
            sid: sid.to_string(),
            state: None,
            group: None,
            failback: None,
            max_restart: None,
            max_relocate: None,
            comment: None,
        }
    }

    /// The resource with the daemon's defaults applied. `node` is `None`:
    /// it comes from the guest's location, not from this file.
    pub fn config(&self) -> ResourceConfig {
        ResourceConfig {
            node: None,
            state: self.state.map_or(RequestState::Started, ConfiguredState::request_state),
            max_restart: self.max_restart.unwrap_or(1),
            max_relocate: self.max_relocate.unwrap_or(1),
            failback: self.failback.unwrap_or(true),
            group: self.group.clone(),
            lock: None,
            comment: self.comment.clone(),
        }
    }
}

/// Every resource by sid, with defaults applied (see [`ResourceSection::config`]).
pub fn service_config(sections: &[ResourceSection]) -> ServiceConfig {
    sections.iter().map(|s| (s.sid.clone(), s.config())).collect()
}

const KEYS: &[&str] = &["comment", "failback", "group", "max_relocate", "max_restart", "state"];

pub use crate::core::types::is_resource_name;

fn resource_from_section(s: &Section) -> Result<ResourceSection, ConfigError> {
    if !matches!(s.kind.as_str(), "vm" | "ct") {
        return Err(ConfigError::at(
            s.line,
            format!("unknown resource type '{}' (expected vm or ct)", s.kind),
        ));
    }
    if !is_resource_name(&s.id) {
        return Err(ConfigError::at(
            s.line,
            format!(
                "invalid resource name '{}' in '{}: {}' (expected a number of at least two digits)",
                s.id, s.kind, s.id
            ),
        ));
    }
    let sid = format!("{}:{}", s.kind, s.id);
    let context = format!("resource '{sid}'");
    let key_err = |key: &str, detail: String| ConfigError::key(s.line_of(key), &context, key, detail);
    for p in &s.properties {
        if !KEYS.contains(&p.key.as_str()) {
            return Err(ConfigError::key(p.line, &context, &p.key, "unknown key"));
        }
        if p.bare && p.key != "failback" {
            return Err(key_err(&p.key, "missing value".into()));
        }
    }
    let count = |key: &str| -> Result<Option<u32>, ConfigError> {
        let Some(v) = s.get(key) else { return Ok(None) };
        let digits = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
        match v.parse::<u32>() {
            Ok(n) if digits => Ok(Some(n)),
            Err(_) if digits => Err(key_err(key, format!("{v} is out of range (at most {})", u32::MAX))),
            _ => Err(key_err(key, format!("expected a non-negative integer, got '{v}'"))),
        }
    };
    let mut out = ResourceSection::new(&sid);
    if let Some(v) = s.get("state") {
        out.state = Some(ConfiguredState::parse(v).ok_or_else(|| {
            key_err(
                "state",
                format!("expected started, stopped, enabled, disabled or ignored, got '{v}'"),
            )
        })?);
    }
    if let Some(v) = s.get("group") {
        if !is_config_id(v) {
            return Err(key_err("group", format!("invalid group id '{v}'")));
        }
        out.group = Some(v.to_string());
    }
    if let Some(v) = s.get("failback") {
        out.failback =
            Some(parse_bool(v).ok_or_else(|| key_err("failback", format!("expected a boolean (0 or 1), got '{v}'")))?);
    }
    out.max_restart = count("max_restart")?;
    out.max_relocate = count("max_relocate")?;
    if let Some(v) = s.get("comment") {
        check_comment(v).map_err(|e| key_err("comment", e))?;
        out.comment = Some(v.to_string());
    }
    Ok(out)
}

/// Parses resources.cfg text, in file order. Unknown keys, bad values,
/// unknown types and duplicate sids are errors with the line of the
/// offending key (or of the header).
pub fn parse_resources(text: &str) -> Result<Vec<ResourceSection>, ConfigError> {
    let mut out: Vec<ResourceSection> = Vec::new();
    for s in section::parse(text)? {
        let resource = resource_from_section(&s)?;
        if out.iter().any(|r| r.sid == resource.sid) {
            return Err(ConfigError::at(
                s.line,
                format!("duplicate resource '{}'", resource.sid),
            ));
        }
        out.push(resource);
    }
    Ok(out)
}

/// Renders resources canonically (see the module documentation). A sid
/// without a `type:` prefix is written as it is.
pub fn write_resources(resources: &[ResourceSection]) -> String {
    let sections: Vec<Section> = resources
        .iter()
        .map(|r| {
            let (kind, name) = split_sid(&r.sid).unwrap_or(("", r.sid.as_str()));
            let mut s = Section::new(kind, name);
            if let Some(comment) = r.comment.as_deref().filter(|c| !c.is_empty()) {
                s.push("comment", comment);
            }
            if let Some(failback) = r.failback {
                s.push("failback", if failback { "1" } else { "0" });
            }
            if let Some(group) = &r.group {
                s.push("group", group.as_str());
            }
            if let Some(n) = r.max_relocate {
                s.push("max_relocate", n.to_string());
            }
            if let Some(n) = r.max_restart {
                s.push("max_restart", n.to_string());
            }
            if let Some(state) = r.state {
                s.push("state", state.as_str());
            }
            s
        })
        .collect();
    section::write(&sections)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CANONICAL: &str = "vm: 100\n\tcomment database: primary\n\tfailback 0\n\tgroup prefer_node1\n\
                             \tmax_relocate 2\n\tmax_restart 3\n\tstate started\n\n\
                             ct: 101\n\tstate enabled\n\n\
                             vm: 102\n\n\
                             vm: 99\n\tmax_restart 0\n\tstate ignored\n\n";

    #[test]
    fn canonical_text_round_trips_byte_for_byte() {
        let resources = parse_resources(CANONICAL).unwrap();
        assert_eq!(resources.len(), 4);
        assert_eq!(write_resources(&resources), CANONICAL);
        assert_eq!(parse_resources(&write_resources(&resources)).unwrap(), resources);
    }

    #[test]
    fn defaults_are_applied_and_node_is_unset() {
        let services = service_config(&parse_resources(CANONICAL).unwrap());
        let vm100 = &services["vm:100"];
        assert_eq!(vm100.node, None);
        assert_eq!(vm100.state, RequestState::Started);
        assert!(!vm100.failback);
        assert_eq!((vm100.max_restart, vm100.max_relocate), (3, 2));
        assert_eq!(vm100.group.as_deref(), Some("prefer_node1"));
        assert_eq!(vm100.comment.as_deref(), Some("database: primary"));
        assert_eq!(services["ct:101"].state, RequestState::Started);
        let vm102 = &services["vm:102"];
        assert_eq!(vm102.state, RequestState::Started);
        assert!(vm102.failback);
        assert_eq!((vm102.max_restart, vm102.max_relocate), (1, 1));
        assert_eq!(vm102.group, None);
        assert_eq!(services["vm:99"].state, RequestState::Ignored);
        assert_eq!(services["vm:99"].max_restart, 0);
    }

    #[test]
    fn built_sections_round_trip() {
        let mut r = ResourceSection::new("ct:200");
        r.state = Some(ConfiguredState::Disabled);
        r.failback = Some(true);
        r.max_relocate = Some(0);
        let written = write_resources(std::slice::from_ref(&r));
        assert_eq!(written, "ct: 200\n\tfailback 1\n\tmax_relocate 0\n\tstate disabled\n\n");
        assert_eq!(parse_resources(&written).unwrap(), vec![r]);
    }

    #[test]
    fn non_canonical_text_is_normalised() {
        let text = "vm: 100\n  state stopped\n  failback no\n  comment  x  \n";
        let resources = parse_resources(text).unwrap();
        let written = write_resources(&resources);
        assert_eq!(written, "vm: 100\n\tcomment x\n\tfailback 0\n\tstate stopped\n\n");
        assert_eq!(parse_resources(&written).unwrap(), resources);
    }

    #[test]
    fn bad_inputs_name_line_and_key() {
        let cases: Vec<(&str, &str, Option<&str>)> = vec![
            (
                "vm: 100\n\tstate started\n\tcolour red\n",
                "line 3: resource 'vm:100': key 'colour': unknown key",
                Some("colour"),
            ),
            (
                "vm: 100\n\tstate running\n",
                "line 2: resource 'vm:100': key 'state': expected started, stopped, enabled, disabled or ignored, got 'running'",
                Some("state"),
            ),
            (
                "ct: 101\n\tstate started\n\tmax_restart -1\n",
                "line 3: resource 'ct:101': key 'max_restart': expected a non-negative integer, got '-1'",
                Some("max_restart"),
            ),
            (
                "ct: 101\n\tmax_restart 4294967296\n",
                "line 2: resource 'ct:101': key 'max_restart': 4294967296 is out of range (at most 4294967295)",
                Some("max_restart"),
            ),
            (
                "ct: 101\n\tmax_relocate 1.5\n",
                "line 2: resource 'ct:101': key 'max_relocate': expected a non-negative integer, got '1.5'",
                Some("max_relocate"),
            ),
            (
                "vm: 100\n\tfailback 2\n",
                "line 2: resource 'vm:100': key 'failback': expected a boolean (0 or 1), got '2'",
                Some("failback"),
            ),
            (
                "vm: 100\n\tgroup my.group\n",
                "line 2: resource 'vm:100': key 'group': invalid group id 'my.group'",
                Some("group"),
            ),
            (
                "vm: 100\n\tstate\n",
                "line 2: resource 'vm:100': key 'state': missing value",
                Some("state"),
            ),
            (
                "vm: 7\n\tstate started\n",
                "line 1: invalid resource name '7' in 'vm: 7' (expected a number of at least two digits)",
                None,
            ),
            (
                "vm: 0100\n",
                "line 1: invalid resource name '0100' in 'vm: 0100' (expected a number of at least two digits)",
                None,
            ),
            (
                "lxc: 100\n\tstate started\n",
                "line 1: unknown resource type 'lxc' (expected vm or ct)",
                None,
            ),
            (
                "vm: 100\n\nvm: 100\n\tstate stopped\n",
                "line 3: duplicate resource 'vm:100'",
                None,
            ),
            (
                "vm: 100\n\tstate started\n\tstate stopped\n",
                "line 3: duplicate key 'state' (first on line 2)",
                None,
            ),
        ];
        for (text, message, key) in cases {
            let err = parse_resources(text).unwrap_err();
            assert_eq!(err.to_string(), message, "{text:?}");
            assert_eq!(err.key.as_deref(), key, "{text:?}");
        }
    }
}
