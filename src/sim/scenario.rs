//! Reads a scenario directory in upstream's regression-test format (spec
//! §8.2) into typed inputs. Every problem is reported with the file it is
//! in and, where the format has lines, the line number.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::config::groups;
use crate::config::rules::parse_rules;
use crate::core::rules::Rule;
use crate::core::status::{Groups, ManagerStatus, ResourceConfig, ServiceConfig};
use crate::core::types::{NodeName, RequestState, split_sid};

/// Longest `delay` of a cmdlist entry, in virtual seconds (about 11 days).
pub const MAX_DELAY_SECS: i64 = 1_000_000;
/// A scenario input problem: which file, which line (1-based, if known), what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{}: {}", self.file.display(), line, self.message),
            None => write!(f, "{}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ScenarioError {}

/// Simulated hardware of one node (`hardware_status[node]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NodeHardware {
    pub power: bool,
    pub network: bool,
    pub maxcpu: Option<f64>,
    pub maxmem: Option<f64>,
    pub version: Option<String>,
}

/// A guest's resource figures; unset ones take the simulator's defaults.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GuestStats {
    /// Configured cores (0 = may use the whole node).
    pub maxcpu: Option<f64>,
    /// Configured memory in bytes.
    pub maxmem: Option<f64>,
    /// Measured cores in use.
    pub cpu: Option<f64>,
    /// Measured memory in bytes.
    pub mem: Option<f64>,
}

impl GuestStats {
    fn set(&mut self, key: &str, value: f64) {
        match key {
            "maxcpu" => self.maxcpu = Some(value),
            "maxmem" => self.maxmem = Some(value),
            "cpu" => self.cpu = Some(value),
            _ => self.mem = Some(value),
        }
    }
}

/// One simulated hardware or admin command of the cmdlist (spec §8.3).
#[derive(Debug, Clone, PartialEq)]
pub enum HwCommand {
    Power {
        node: NodeName,
        on: bool,
    },
    Network {
        node: NodeName,
        on: bool,
    },
    Reboot {
        node: NodeName,
    },
    Shutdown {
        node: NodeName,
    },
    RestartLrm {
        node: NodeName,
    },
    CrmStop {
        node: NodeName,
    },
    CrmStart {
        node: NodeName,
    },
    /// Queue a CRM command line (maintenance, disarm, arm).
    CrmQueue {
        node: NodeName,
        line: String,
    },
    Cfs {
        node: NodeName,
        what: CfsPart,
        works: bool,
    },
    Version {
        node: NodeName,
        version: String,
    },
    ServiceState {
        sid: String,
        state: RequestState,
    },
    /// Queue `migrate|relocate|stop <sid> <arg>` as is.
    ServiceQueue {
        sid: String,
        line: String,
    },
    ServiceAdd {
        sid: String,
        node: NodeName,
        state: RequestState,
        running: bool,
    },
    ServiceDelete {
        sid: String,
    },
    ServiceLock {
        sid: String,
        lock: String,
    },
    ServiceUnlock {
        sid: String,
        lock: Option<String>,
    },
    ServiceStaticStats {
        sid: String,
        maxcpu: Option<f64>,
        maxmem_mib: Option<f64>,
    },
    ServiceDynamicStats {
        sid: String,
        cpu: Option<f64>,
        mem_mib: Option<f64>,
    },
    ServiceManualMigrate {
        sid: String,
        node: NodeName,
    },
    Delay {
        secs: i64,
    },
    SkipRound {
        daemon: Daemon,
        rounds: u32,
    },
}

/// Which of the two per-node daemons.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Daemon {
    Crm,
    Lrm,
}

impl Daemon {
    pub fn as_str(self) -> &'static str {
        match self {
            Daemon::Crm => "crm",
            Daemon::Lrm => "lrm",
        }
    }
}

/// The two cfs fault switches of a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CfsPart {
    /// Reads and writes of the shared store.
    Rw,
    /// The per-round refresh.
    Update,
}

/// A command as written, with its parsed form.
#[derive(Debug, Clone, PartialEq)]
pub struct CmdEntry {
    pub text: String,
    pub command: HwCommand,
}

/// Everything a scenario directory provides.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub cmdlist: Vec<Vec<CmdEntry>>,
    pub hardware: BTreeMap<NodeName, NodeHardware>,
    pub manager_status: ManagerStatus,
    pub services: ServiceConfig,
    pub groups: Groups,
    /// Placement rules (`rules_config`).
    pub rules: Vec<Rule>,
    pub datacenter: Value,
    /// Configured maxima and measured usage per guest.
    pub stats: BTreeMap<String, GuestStats>,
    /// Initially running guests per node (`service_status_<node>`).
    pub running: BTreeMap<NodeName, BTreeMap<String, bool>>,
}

struct Reader<'a> {
    dir: &'a Path,
}

impl Reader<'_> {
    fn error(&self, name: &str, line: Option<usize>, message: impl Into<String>) -> ScenarioError {
        ScenarioError {
            file: self.dir.join(name),
            line,
            message: message.into(),
        }
    }

    fn text(&self, name: &str) -> Result<Option<String>, ScenarioError> {
        let path = self.dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(text) => Ok(Some(text)),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(self.error(name, None, format!("cannot read: {err}"))),
        }
    }

    fn json(&self, name: &str) -> Result<Option<(String, Value)>, ScenarioError> {
        let Some(text) = self.text(name)? else {
            return Ok(None);
        };
        let value = serde_json::from_str(&text)
            .map_err(|err| self.error(name, Some(err.line()), format!("invalid JSON: {err}")))?;
        Ok(Some((text, value)))
    }
}

/// The 1-based line of the first occurrence of `needle` at or after byte
/// `from`, for error messages; advances `from` past it.
fn line_of(text: &str, needle: &str, from: &mut usize) -> Option<usize> {
    let pos = text[*from..].find(needle)? + *from;
    *from = pos + needle.len();
    Some(text[..pos].matches('\n').count() + 1)
}

impl Scenario {
    /// Loads a scenario directory. Missing optional files get upstream's defaults.
    pub fn load(dir: &Path) -> Result<Scenario, ScenarioError> {
        let reader = Reader { dir };
        if !dir.is_dir() {
            return Err(reader.error("", None, "not a scenario directory"));
        }
        let hardware = match reader.json("hardware_status")? {
            Some((text, value)) => parse_hardware(&reader, &text, &value)?,
            None => default_hardware(),
        };
        let cmdlist = match reader.json("cmdlist")? {
            Some((text, value)) => parse_cmdlist(&reader, &text, &value, &hardware)?,
            None => {
                return Err(reader.error("cmdlist", None, "missing (every scenario needs one)"));
            }
        };
        let manager_status = match reader.json("manager_status")? {
            Some((_, value)) => serde_json::from_value(value)
                .map_err(|err| reader.error("manager_status", None, format!("invalid manager status: {err}")))?,
            None => ManagerStatus::default(),
        };
        let services = match reader.json("service_config")? {
            Some((text, value)) => parse_services(&reader, &text, &value)?,
            None => default_services(),
        };
        let groups = match reader.text("groups")? {
            Some(text) => parse_groups(&reader, &text)?,
            None => Groups::new(),
        };
        let rules = match reader.text("rules_config")? {
            Some(text) => parse_rules(&text).map_err(|e| reader.error("rules_config", Some(e.line), e.message))?,
            None => Vec::new(),
        };
        let datacenter = reader.json("datacenter.cfg")?.map(|(_, v)| v).unwrap_or(Value::Null);
        if !(datacenter.is_null() || datacenter.is_object()) {
            return Err(reader.error("datacenter.cfg", None, "expected a JSON object"));
        }
        let mut stats: BTreeMap<String, GuestStats> = BTreeMap::new();
        for (file, keys) in [
            ("static_service_stats", ["maxcpu", "maxmem"]),
            ("dynamic_service_stats", ["cpu", "mem"]),
        ] {
            for (sid, v) in object_map(&reader, file)? {
                let entry = stats.entry(sid.clone()).or_default();
                for key in keys {
                    let Some(field) = v.get(key) else { continue };
                    let number = field.as_f64().filter(|n| *n >= 0.0).ok_or_else(|| {
                        reader.error(
                            file,
                            None,
                            format!("service '{sid}': '{key}' must be a non-negative number"),
                        )
                    })?;
                    entry.set(key, number);
                }
            }
        }
        let mut running = BTreeMap::new();
        for node in hardware.keys() {
            let name = format!("service_status_{node}");
            let map: BTreeMap<String, bool> = object_map(&reader, &name)?
                .into_iter()
                .map(|(sid, v)| (sid, v.as_i64().unwrap_or(0) != 0 || v.as_bool().unwrap_or(false)))
                .collect();
            running.insert(node.clone(), map);
        }
        Ok(Scenario {
            cmdlist,
            hardware,
            manager_status,
            services,
            groups,
            rules,
            datacenter,
            stats,
            running,
        })
    }
}

impl Scenario {
    /// The built-in demonstration: upstream's default cluster (three nodes,
    /// six VMs), a node losing its network, and its return.
    pub fn demo() -> Scenario {
        let hardware = default_hardware();
        let batches: [&[&str]; 4] = [
            &["power node1 on", "power node2 on", "power node3 on"],
            &["network node3 off"],
            &["service vm:101 migrate node2"],
            &["power node3 on"],
        ];
        let cmdlist = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .map(|text| CmdEntry {
                        text: text.to_string(),
                        command: parse_command(text, &hardware).expect("built-in demo commands are valid"),
                    })
                    .collect()
            })
            .collect();
        Scenario {
            cmdlist,
            hardware,
            manager_status: ManagerStatus::default(),
            services: default_services(),
            groups: Groups::new(),
            rules: Vec::new(),
            datacenter: Value::Null,
            stats: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }
}

impl Scenario {
    /// `nodes` nodes with one service each (`vm:10<i>` on `node<i>`), all
    /// powered on, then `node<victim>` powered off: the simulator's side
    /// of `hactor-bench timeline` (node1 becomes the master).
    pub fn node_loss(nodes: usize, victim: usize) -> Scenario {
        let hardware: BTreeMap<NodeName, NodeHardware> = (1..=nodes)
            .map(|i| {
                let hw = NodeHardware {
                    power: false,
                    network: false,
                    maxcpu: Some(24.0),
                    maxmem: Some(128.0 * 1024.0 * 1024.0 * 1024.0),
                    version: None,
                };
                (format!("node{i}"), hw)
            })
            .collect();
        let mut services = ServiceConfig::new();
        for i in 1..=nodes {
            services.insert(
                format!("vm:{}", 100 + i),
                ResourceConfig::new(&format!("node{i}"), RequestState::Started),
            );
        }
        let power_on: Vec<String> = (1..=nodes).map(|i| format!("power node{i} on")).collect();
        let batches = [power_on, vec![format!("power node{victim} off")]];
        let cmdlist = batches
            .iter()
            .map(|batch| {
                batch
                    .iter()
                    .filter_map(|text| {
                        let command = parse_command(text, &hardware).ok()?;
                        Some(CmdEntry {
                            text: text.clone(),
                            command,
                        })
                    })
                    .collect()
            })
            .collect();
        Scenario {
            cmdlist,
            hardware,
            manager_status: ManagerStatus::default(),
            services,
            groups: Groups::new(),
            rules: Vec::new(),
            datacenter: Value::Null,
            stats: BTreeMap::new(),
            running: BTreeMap::new(),
        }
    }
}

fn object_map(reader: &Reader<'_>, name: &str) -> Result<BTreeMap<String, Value>, ScenarioError> {
    match reader.json(name)? {
        None => Ok(BTreeMap::new()),
        Some((_, Value::Object(map))) => Ok(map.into_iter().collect()),
        Some(_) => Err(reader.error(name, None, "expected a JSON object")),
    }
}

fn default_hardware() -> BTreeMap<NodeName, NodeHardware> {
    (1..=3)
        .map(|i| {
            let hw = NodeHardware {
                power: false,
                network: false,
                maxcpu: Some(24.0),
                maxmem: Some(128.0 * 1024.0 * 1024.0 * 1024.0),
                version: None,
            };
            (format!("node{i}"), hw)
        })
        .collect()
}

fn default_services() -> ServiceConfig {
    let mut services = ServiceConfig::new();
    for (sid, node) in [
        ("vm:101", "node1"),
        ("vm:102", "node2"),
        ("vm:103", "node3"),
        ("vm:104", "node1"),
        ("vm:105", "node2"),
        ("vm:106", "node3"),
    ] {
        services.insert(sid.to_string(), ResourceConfig::new(node, RequestState::Started));
    }
    services
}

fn on_off(v: Option<&Value>) -> Option<bool> {
    match v?.as_str()? {
        "on" => Some(true),
        "off" => Some(false),
        _ => None,
    }
}

fn parse_hardware(
    reader: &Reader<'_>,
    text: &str,
    value: &Value,
) -> Result<BTreeMap<NodeName, NodeHardware>, ScenarioError> {
    let name = "hardware_status";
    let Value::Object(nodes) = value else {
        return Err(reader.error(name, None, "expected an object of nodes"));
    };
    if nodes.is_empty() {
        return Err(reader.error(name, None, "no nodes defined"));
    }
    let mut out = BTreeMap::new();
    let mut from = 0;
    for (node, d) in nodes {
        let line = line_of(text, &format!("\"{node}\""), &mut from);
        let (Some(power), Some(network)) = (on_off(d.get("power")), on_off(d.get("network"))) else {
            return Err(reader.error(
                name,
                line,
                format!("node '{node}': power and network must be \"on\" or \"off\""),
            ));
        };
        out.insert(
            node.clone(),
            NodeHardware {
                power,
                network,
                maxcpu: d.get("maxcpu").and_then(Value::as_f64),
                maxmem: d.get("maxmem").and_then(Value::as_f64),
                version: d.get("pve-manager-version").and_then(Value::as_str).map(str::to_string),
            },
        );
    }
    Ok(out)
}

fn parse_services(reader: &Reader<'_>, text: &str, value: &Value) -> Result<ServiceConfig, ScenarioError> {
    let name = "service_config";
    let Value::Object(entries) = value else {
        return Err(reader.error(name, None, "expected an object of services"));
    };
    let mut services = ServiceConfig::new();
    let mut from = 0;
    for (sid, d) in entries {
        let line = line_of(text, &format!("\"{sid}\""), &mut from);
        let err = |msg: String| reader.error(name, line, format!("service '{sid}': {msg}"));
        check_sim_sid(sid).map_err(&err)?;
        let Some(node) = d.get("node").and_then(Value::as_str) else {
            return Err(err("missing 'node'".into()));
        };
        let state = match d.get("state") {
            None => RequestState::Disabled,
            Some(v) => v
                .as_str()
                .and_then(RequestState::parse)
                .ok_or_else(|| err(format!("invalid state {v}")))?,
        };
        let mut cd = ResourceConfig::new(node, state);
        if let Some(v) = d.get("max_restart") {
            cd.max_restart = uint(v).ok_or_else(|| err(format!("invalid max_restart {v}")))?;
        }
        if let Some(v) = d.get("max_relocate") {
            cd.max_relocate = uint(v).ok_or_else(|| err(format!("invalid max_relocate {v}")))?;
        }
        if let Some(v) = d.get("failback") {
            cd.failback = uint(v).ok_or_else(|| err(format!("invalid failback {v}")))? != 0;
        }
        cd.group = d.get("group").and_then(Value::as_str).map(str::to_string);
        cd.lock = d.get("lock").and_then(Value::as_str).map(str::to_string);
        services.insert(sid.clone(), cd);
    }
    Ok(services)
}

fn uint(v: &Value) -> Option<u32> {
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
        .or_else(|| v.as_bool().map(u64::from))
        .and_then(|n| u32::try_from(n).ok())
}

/// The simulator's guests: `vm`, `ct` and the failure-injecting `fa`, with
/// a numeric name.
pub fn check_sim_sid(sid: &str) -> Result<(), String> {
    match split_sid(sid) {
        Some(("vm" | "ct" | "fa", name)) if name.chars().all(|c| c.is_ascii_digit()) => Ok(()),
        _ => Err(format!(
            "invalid service id '{sid}' (expected vm:<n>, ct:<n> or fa:<n>)"
        )),
    }
}

fn parse_groups(reader: &Reader<'_>, text: &str) -> Result<Groups, ScenarioError> {
    groups::parse_groups(text).map_err(|e| reader.error("groups", Some(e.line), e.message))
}

fn parse_cmdlist(
    reader: &Reader<'_>,
    text: &str,
    value: &Value,
    hardware: &BTreeMap<NodeName, NodeHardware>,
) -> Result<Vec<Vec<CmdEntry>>, ScenarioError> {
    let name = "cmdlist";
    let Value::Array(batches) = value else {
        return Err(reader.error(name, None, "expected an array of command batches"));
    };
    let mut from = 0;
    let mut out = Vec::new();
    for batch in batches {
        let Value::Array(cmds) = batch else {
            return Err(reader.error(name, None, "every batch must be an array of strings"));
        };
        let mut entries = Vec::new();
        for cmd in cmds {
            let Some(cmd) = cmd.as_str() else {
                return Err(reader.error(name, None, format!("command {cmd} is not a string")));
            };
            let line = line_of(text, &serde_json::to_string(cmd).unwrap_or_default(), &mut from);
            let command = parse_command(cmd, hardware)
                .map_err(|msg| reader.error(name, line, format!("command '{cmd}': {msg}")))?;
            entries.push(CmdEntry {
                text: cmd.to_string(),
                command,
            });
        }
        out.push(entries);
    }
    Ok(out)
}

/// Parses one cmdlist command; the error says what is wrong with it.
pub fn parse_command(cmd: &str, hardware: &BTreeMap<NodeName, NodeHardware>) -> Result<HwCommand, String> {
    let words: Vec<&str> = cmd.split_whitespace().collect();
    let node = |name: &str| -> Result<NodeName, String> {
        if hardware.contains_key(name) {
            Ok(name.to_string())
        } else {
            Err(format!("no such node '{name}'"))
        }
    };
    let switch = |word: &str| match word {
        "on" => Ok(true),
        "off" => Ok(false),
        other => Err(format!("expected on or off, got '{other}'")),
    };
    let number = |word: &str| word.parse::<f64>().map_err(|_| format!("'{word}' is not a number"));
    let sid = |word: &str| check_sim_sid(word).map(|()| word.to_string());
    Ok(match words.as_slice() {
        ["power", n, s] => HwCommand::Power {
            node: node(n)?,
            on: switch(s)?,
        },
        ["network", n, s] => HwCommand::Network {
            node: node(n)?,
            on: switch(s)?,
        },
        ["reboot", n] => HwCommand::Reboot { node: node(n)? },
        ["shutdown", n] => HwCommand::Shutdown { node: node(n)? },
        ["restart-lrm", n] => HwCommand::RestartLrm { node: node(n)? },
        ["crm", n, "stop"] => HwCommand::CrmStop { node: node(n)? },
        ["crm", n, "start"] => HwCommand::CrmStart { node: node(n)? },
        [
            "crm",
            n,
            action @ ("enable-node-maintenance" | "disable-node-maintenance"),
        ] => {
            let node = node(n)?;
            HwCommand::CrmQueue {
                line: format!("{action} {node}"),
                node,
            }
        }
        ["crm", n, "disarm-ha", mode @ ("freeze" | "ignore")] => HwCommand::CrmQueue {
            node: node(n)?,
            line: format!("disarm-ha {mode}"),
        },
        ["crm", n, "arm-ha"] => HwCommand::CrmQueue {
            node: node(n)?,
            line: "arm-ha".to_string(),
        },
        ["cfs", n, part, state] => HwCommand::Cfs {
            node: node(n)?,
            what: match *part {
                "rw" => CfsPart::Rw,
                "update" => CfsPart::Update,
                other => return Err(format!("unknown cfs action '{other}'")),
            },
            works: match *state {
                "work" => true,
                "fail" => false,
                other => return Err(format!("unknown cfs state '{other}'")),
            },
        },
        ["pve-manager-version", n, "set", v] => HwCommand::Version {
            node: node(n)?,
            version: v.to_string(),
        },
        ["delay", secs] => HwCommand::Delay {
            // Bounded so that `now + secs` cannot overflow and a run ends.
            secs: secs
                .parse()
                .ok()
                .filter(|s| (0..=MAX_DELAY_SECS).contains(s))
                .ok_or_else(|| format!("invalid delay '{secs}' (0 to {MAX_DELAY_SECS} seconds)"))?,
        },
        ["skip-round", daemon, rest @ ..] if rest.len() <= 1 => HwCommand::SkipRound {
            daemon: match *daemon {
                "crm" => Daemon::Crm,
                "lrm" => Daemon::Lrm,
                other => return Err(format!("unknown daemon '{other}'")),
            },
            rounds: match rest.first() {
                Some(n) => n.parse().map_err(|_| format!("invalid round count '{n}'"))?,
                None => 1,
            },
        },
        ["service", s, state @ ("started" | "disabled" | "stopped" | "ignored")] => HwCommand::ServiceState {
            sid: sid(s)?,
            state: RequestState::parse(state).expect("matched above"),
        },
        ["service", s, task @ ("migrate" | "relocate"), n] => {
            let sid = sid(s)?;
            HwCommand::ServiceQueue {
                line: format!("{task} {sid} {n}"),
                sid,
            }
        }
        ["service", s, "stop", t] => {
            let sid = sid(s)?;
            t.parse::<i64>().map_err(|_| format!("invalid timeout '{t}'"))?;
            HwCommand::ServiceQueue {
                line: format!("stop {sid} {t}"),
                sid,
            }
        }
        ["service", s, "add", n, rest @ ..] if rest.len() <= 2 => HwCommand::ServiceAdd {
            sid: sid(s)?,
            node: node(n)?,
            state: match rest.first() {
                Some(st) => RequestState::parse(st).ok_or_else(|| format!("invalid state '{st}'"))?,
                None => RequestState::Started,
            },
            running: rest.get(1).is_some_and(|r| *r != "0"),
        },
        ["service", s, "delete"] => HwCommand::ServiceDelete { sid: sid(s)? },
        ["service", s, "lock", rest @ ..] if rest.len() <= 1 => HwCommand::ServiceLock {
            sid: sid(s)?,
            lock: rest.first().unwrap_or(&"backup").to_string(),
        },
        ["service", s, "unlock", rest @ ..] if rest.len() <= 1 => HwCommand::ServiceUnlock {
            sid: sid(s)?,
            lock: rest.first().map(|l| l.to_string()),
        },
        ["service", s, "set-static-stats", rest @ ..] => {
            let (mut maxcpu, mut maxmem_mib) = (None, None);
            for pair in rest.chunks(2) {
                match pair {
                    ["maxcpu", v] => maxcpu = Some(number(v)?),
                    ["maxmem", v] => maxmem_mib = Some(number(v)?),
                    other => return Err(format!("invalid static stats {other:?}")),
                }
            }
            HwCommand::ServiceStaticStats {
                sid: sid(s)?,
                maxcpu,
                maxmem_mib,
            }
        }
        ["service", s, "set-dynamic-stats", rest @ ..] => {
            let (mut cpu, mut mem_mib) = (None, None);
            for pair in rest.chunks(2) {
                match pair {
                    ["cpu", v] => cpu = Some(number(v)?),
                    ["mem", v] => mem_mib = Some(number(v)?),
                    other => return Err(format!("invalid dynamic stats {other:?}")),
                }
            }
            HwCommand::ServiceDynamicStats {
                sid: sid(s)?,
                cpu,
                mem_mib,
            }
        }
        ["service", s, "manual-migrate", n] => HwCommand::ServiceManualMigrate {
            sid: sid(s)?,
            node: node(n)?,
        },
        _ => return Err("unknown command".to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_defaults() {
        let hw = default_hardware();
        assert_eq!(
            parse_command("service vm:101 add node2", &hw),
            Ok(HwCommand::ServiceAdd {
                sid: "vm:101".into(),
                node: "node2".into(),
                state: RequestState::Started,
                running: false
            })
        );
        assert_eq!(
            parse_command("skip-round crm", &hw),
            Ok(HwCommand::SkipRound {
                daemon: Daemon::Crm,
                rounds: 1
            })
        );
        assert_eq!(
            parse_command("power node9 on", &hw),
            Err("no such node 'node9'".to_string())
        );
        assert!(parse_command("service xx:1 started", &hw).is_err());
        assert!(parse_command("fly node1 away", &hw).is_err());
        // `now + secs` overflowed (a panic) for the largest delays.
        assert_eq!(
            parse_command("delay 1000000", &hw),
            Ok(HwCommand::Delay { secs: 1_000_000 })
        );
        for bad in ["9223372036854775807", "1000001", "-1"] {
            assert_eq!(
                parse_command(&format!("delay {bad}"), &hw).unwrap_err(),
                format!("invalid delay '{bad}' (0 to 1000000 seconds)")
            );
        }
    }

    #[test]
    fn line_numbers_point_at_the_command() {
        let text = "[\n  [ \"power node1 on\" ],\n  [ \"dance\" ]\n]";
        let mut from = 0;
        assert_eq!(line_of(text, "\"power node1 on\"", &mut from), Some(2));
        assert_eq!(line_of(text, "\"dance\"", &mut from), Some(3));
    }
}
