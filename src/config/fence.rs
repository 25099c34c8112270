//! `fence.cfg`: hardware fence devices in upstream's format (spec §10).
//!
//! ```text
//! # comment
//! device <name>[:<n>] <agent> <args...>      # sub-device n (default 1) of <name>
//! connect <name>[:<n>] node=<node> <args...> # node on that sub-device, extra args
//! ```
//!
//! Sub-devices of one name are *parallel*: fencing through the device runs
//! all of them (a node with two power supplies on two switches), and all
//! must succeed. Devices are tried in declaration order; the next one only
//! when the previous failed. Arguments are split like a shell command line
//! (double quotes with backslash escapes, single quotes literal).
//!
//! The text is kept line by line, so [`FenceConfig::write`] gives back the
//! parsed text byte for byte (comments, blank and ignored lines included);
//! lines added through [`FenceConfig::push_device`] and
//! [`FenceConfig::push_connect`] are rendered canonically.
//!
//! Decisions where upstream's parser is accidental:
//! - a device's priority is the position of its first declaration
//!   (upstream re-numbers the first device when it gets a second
//!   sub-device, because its priority 0 reads as unset);
//! - a device name must be word characters and a node name a valid node
//!   name, whole (upstream silently truncates `my-dev` to `my`);
//! - `k=v` renders as `--k=<v quoted>` splitting at the *first* `=` (upstream
//!   keeps only the text up to a second `=`, which would cut a password).

use std::collections::BTreeMap;

use super::ConfigError;

/// One `device` line: sub-device `sub` of device `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceDecl {
    pub name: String,
    pub sub: u32,
    pub agent: String,
    pub args: Vec<String>,
}

/// One `connect` line: `node` on sub-device `sub` of `name`, with its own
/// extra arguments (`plug=...`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectDecl {
    pub name: String,
    pub sub: u32,
    pub node: String,
    pub args: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Line {
    /// Comment, blank, or a line upstream ignores with a warning.
    Other(String),
    Device(String, DeviceDecl),
    Connect(String, ConnectDecl),
}

impl Line {
    fn raw(&self) -> &str {
        match self {
            Line::Other(raw) | Line::Device(raw, _) | Line::Connect(raw, _) => raw,
        }
    }
}

/// A parsed `fence.cfg`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FenceConfig {
    lines: Vec<Line>,
    /// Whether the text ended with a line break.
    final_newline: bool,
    /// Lines upstream would warn about and ignore: `(line, text)`.
    pub ignored: Vec<(usize, String)>,
}

/// One command of a fence try: the agent with the device's arguments,
/// then the node's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FenceCommand {
    pub device: String,
    pub sub: u32,
    pub agent: String,
    pub args: Vec<String>,
}

impl FenceCommand {
    /// The agent's arguments as `--key=value` / `-k value` / `--flag`,
    /// each a separate argv element (not shell-quoted), without any
    /// `action` the configuration gives: the caller adds the action it
    /// runs (`off`, then `status`).
    pub fn argv(&self, action: &str) -> Vec<String> {
        let mut argv = Vec::new();
        for arg in &self.args {
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg.as_str(), None),
            };
            if key == "action" || key == "o" {
                continue;
            }
            match (key.chars().count() == 1, value) {
                (true, Some(v)) => {
                    argv.push(format!("-{key}"));
                    argv.push(v.to_string());
                }
                (true, None) => argv.push(format!("-{key}")),
                (false, Some(v)) => argv.push(format!("--{key}={v}")),
                (false, None) => argv.push(format!("--{key}")),
            }
        }
        argv.push(format!("--action={action}"));
        argv
    }

    /// The command line as upstream shows and runs it (`gen_arg_str`):
    /// the agent, then every argument, values shell-quoted.
    pub fn command_line(&self) -> String {
        let mut out = self.agent.clone();
        for arg in &self.args {
            out.push(' ');
            let (key, value) = match arg.split_once('=') {
                Some((k, v)) => (k, Some(v)),
                None => (arg.as_str(), None),
            };
            if key.chars().count() == 1 {
                out.push('-');
                out.push_str(key);
                if let Some(v) = value {
                    out.push(' ');
                    out.push_str(&shell_quote(v));
                }
            } else {
                out.push_str("--");
                out.push_str(key);
                if let Some(v) = value {
                    out.push('=');
                    out.push_str(&shell_quote(v));
                }
            }
        }
        out
    }
}

impl FenceConfig {
    /// Parses `fence.cfg` text. All errors are collected, each naming its
    /// line, in upstream's wording.
    pub fn parse(text: &str) -> Result<FenceConfig, Vec<ConfigError>> {
        let mut config = FenceConfig {
            final_newline: text.ends_with('\n'),
            ..FenceConfig::default()
        };
        let mut errors = Vec::new();
        let body = text.strip_suffix('\n').unwrap_or(text);
        if text.is_empty() {
            return Ok(config);
        }
        for (i, raw) in body.split('\n').enumerate() {
            let number = i + 1;
            let line = raw.trim_matches([' ', '\t', '\r']);
            if line.is_empty() || line.starts_with('#') {
                config.lines.push(Line::Other(raw.to_string()));
                continue;
            }
            match config.parse_line(line) {
                Ok(Some(parsed)) => config.lines.push(match parsed {
                    Parsed::Device(decl) => Line::Device(raw.to_string(), decl),
                    Parsed::Connect(decl) => Line::Connect(raw.to_string(), decl),
                }),
                Ok(None) => {
                    config.ignored.push((number, line.to_string()));
                    config.lines.push(Line::Other(raw.to_string()));
                }
                Err(message) => {
                    errors.push(ConfigError::at(number, message));
                    config.lines.push(Line::Other(raw.to_string()));
                }
            }
        }
        if errors.is_empty() { Ok(config) } else { Err(errors) }
    }

    /// One directive against the lines so far; `None` for a line upstream
    /// ignores (not `device`/`connect` with a name, a target and arguments).
    fn parse_line(&self, line: &str) -> Result<Option<Parsed>, String> {
        let mut words = line.splitn(2, char::is_whitespace);
        let command = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim_start();
        let mut words = rest.splitn(2, char::is_whitespace);
        let device = words.next().unwrap_or_default();
        let rest = words.next().unwrap_or_default().trim_start();
        let mut words = rest.splitn(2, char::is_whitespace);
        let target = words.next().unwrap_or_default();
        let args = words.next().unwrap_or_default().trim_start();
        if !matches!(command, "device" | "connect") || device.is_empty() || target.is_empty() || args.is_empty() {
            return Ok(None);
        }
        let (name, sub) = parse_device_name(device)?;
        let args = split_args(args)?;
        if command == "device" {
            if self.device_lines().any(|d| d.name == name && d.sub == sub) {
                return Err(format!("device '{name}:{sub}' already declared"));
            }
            return Ok(Some(Parsed::Device(DeviceDecl {
                name,
                sub,
                agent: target.to_string(),
                args,
            })));
        }
        if !self.device_lines().any(|d| d.name == name) {
            return Err(format!("device '{name}' must be declared before you can connect to it"));
        }
        if !self.device_lines().any(|d| d.name == name && d.sub == sub) {
            return Err(format!("No parallel device '{name}:{sub}' found"));
        }
        let node = match target.strip_prefix("node=") {
            Some(node) if valid_node(node) => node.to_string(),
            _ => return Err(format!("node=nodename needed to connect device '{name}' to node")),
        };
        if self
            .connect_lines()
            .any(|c| c.name == name && c.sub == sub && c.node == node)
        {
            return Err(format!("node '{node}' already connected to device '{name}:{sub}'"));
        }
        Ok(Some(Parsed::Connect(ConnectDecl { name, sub, node, args })))
    }

    /// The text: what was parsed, byte for byte, with pushed lines after.
    pub fn write(&self) -> String {
        let mut out = self.lines.iter().map(Line::raw).collect::<Vec<_>>().join("\n");
        if self.final_newline && !self.lines.is_empty() {
            out.push('\n');
        }
        out
    }

    /// Adds a `device` line (canonical form); refused as the parser would.
    pub fn push_device(&mut self, decl: DeviceDecl) -> Result<(), String> {
        let raw = format!(
            "device {}:{} {} {}",
            decl.name,
            decl.sub,
            decl.agent,
            decl.args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
        );
        self.push_checked(raw)
    }

    /// Adds a `connect` line (canonical form); refused as the parser would.
    pub fn push_connect(&mut self, decl: ConnectDecl) -> Result<(), String> {
        let raw = format!(
            "connect {}:{} node={} {}",
            decl.name,
            decl.sub,
            decl.node,
            decl.args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ")
        );
        self.push_checked(raw)
    }

    fn push_checked(&mut self, raw: String) -> Result<(), String> {
        let parsed = self
            .parse_line(raw.trim_end())?
            .ok_or_else(|| format!("not a complete directive: {raw}"))?;
        self.lines.push(match parsed {
            Parsed::Device(decl) => Line::Device(raw, decl),
            Parsed::Connect(decl) => Line::Connect(raw, decl),
        });
        self.final_newline = true;
        Ok(())
    }

    fn device_lines(&self) -> impl Iterator<Item = &DeviceDecl> {
        self.lines.iter().filter_map(|l| match l {
            Line::Device(_, d) => Some(d),
            _ => None,
        })
    }

    fn connect_lines(&self) -> impl Iterator<Item = &ConnectDecl> {
        self.lines.iter().filter_map(|l| match l {
            Line::Connect(_, c) => Some(c),
            _ => None,
        })
    }

    /// Device names in priority order (first declaration first).
    pub fn devices(&self) -> Vec<String> {
        let mut names: Vec<String> = Vec::new();
        for d in self.device_lines() {
            if !names.contains(&d.name) {
                names.push(d.name.clone());
            }
        }
        names
    }

    /// The commands of try `try_index` (0-based) for `node`: the connected
    /// sub-devices of the `try_index`-th device the node is connected to,
    /// by sub-device number; `None` once the devices are exhausted.
    pub fn commands(&self, node: &str, try_index: usize) -> Option<Vec<FenceCommand>> {
        self.devices()
            .into_iter()
            .map(|name| {
                let mut subs: BTreeMap<u32, FenceCommand> = BTreeMap::new();
                for connect in self.connect_lines().filter(|c| c.name == name && c.node == node) {
                    if let Some(device) = self.device_lines().find(|d| d.name == name && d.sub == connect.sub) {
                        subs.insert(
                            connect.sub,
                            FenceCommand {
                                device: name.clone(),
                                sub: connect.sub,
                                agent: device.agent.clone(),
                                args: device.args.iter().chain(&connect.args).cloned().collect(),
                            },
                        );
                    }
                }
                subs.into_values().collect::<Vec<_>>()
            })
            .filter(|commands| !commands.is_empty())
            .nth(try_index)
    }

    /// How many devices (parallel sub-devices counted once) can fence
    /// `node`.
    pub fn count_devices(&self, node: &str) -> usize {
        (0..).take_while(|&i| self.commands(node, i).is_some()).count()
    }

    /// Whether any device can fence `node`.
    pub fn has_device(&self, node: &str) -> bool {
        self.commands(node, 0).is_some()
    }
}

enum Parsed {
    Device(DeviceDecl),
    Connect(ConnectDecl),
}

/// `<name>` or `<name>:<n>` (word characters; `n` from 1).
fn parse_device_name(word: &str) -> Result<(String, u32), String> {
    let (name, sub) = match word.split_once(':') {
        Some((name, sub)) => {
            let n: u32 = sub
                .parse()
                .ok()
                .filter(|n| *n >= 1 && sub.chars().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| format!("invalid sub-device number in '{word}' (1, 2, ...)"))?;
            (name, n)
        }
        None => (word, 1),
    };
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("invalid device name '{word}' (letters, digits and '_')"));
    }
    Ok((name.to_string(), sub))
}

fn valid_node(name: &str) -> bool {
    !name.is_empty() && name.len() <= 63 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Splits arguments as a shell (and upstream's `split_args`) does:
/// blanks separate words; in double quotes a backslash escapes the next
/// character; single quotes are literal; outside quotes a backslash
/// escapes the next character.
pub fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => word.push(chars.next().ok_or("unterminated quote in arguments")?),
                        Some(c) => word.push(c),
                        None => return Err("unterminated quote in arguments".into()),
                    }
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => word.push(c),
                        None => return Err("unterminated quote in arguments".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().ok_or("backslash at the end of the arguments")?);
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// Quotes a word for a POSIX shell as upstream's `shellquote` does: words
/// of ASCII word characters and `!%+,-./:=@^` stay bare; anything else is
/// single-quoted, a single quote written `'\''`.
pub fn shell_quote(word: &str) -> String {
    if word.is_empty() {
        return "''".into();
    }
    let safe = |c: char| c.is_ascii_alphanumeric() || "_!%+,-./:=@^".contains(c);
    if word.chars().all(safe) {
        return word.to_string();
    }
    let quoted = format!("'{}'", word.replace('\'', r"'\''"));
    let quoted = quoted.strip_prefix("''").unwrap_or(&quoted);
    let quoted = quoted.strip_suffix("''").unwrap_or(quoted);
    quoted.to_string()
}

/// What `hactor check-config --fence` prints, as upstream's fence
/// configuration test does: `[try] N`, then `[<node>-cmd] <command line>`
/// (one per parallel sub-device) or `[<node>-cmd] none` per node, until a
/// try has no command for any node; or the parse errors. The flag says
/// whether the file parsed.
pub fn check_report(file: &str, text: &str, nodes: &[String]) -> (String, bool) {
    let config = match FenceConfig::parse(text) {
        Ok(config) => config,
        Err(errors) => {
            let mut out = format!("[FenceConfig] Encountered error(s) on parsing '{file}':\n");
            for e in errors {
                out.push_str(&format!("line {}: {}\n", e.line, e.message));
            }
            return (out, false);
        }
    };
    let mut out = String::new();
    for try_index in 0.. {
        out.push_str(&format!("[try] {try_index}\n"));
        let mut any = false;
        for node in nodes {
            match config.commands(node, try_index) {
                Some(commands) => {
                    any = true;
                    for command in commands {
                        out.push_str(&format!("[{node}-cmd] {}\n", command.command_line()));
                    }
                }
                None => out.push_str(&format!("[{node}-cmd] none\n")),
            }
        }
        if !any {
            break;
        }
    }
    (out, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nodes() -> Vec<String> {
        ["node1", "node2", "node3"].map(String::from).to_vec()
    }

    const ESCAPES: &str = "# test escaping, special chars, ...\n\
        device pve_nina fence_pve ip=\"192.168.15.38\" username=\"fäöµ€\" password=\"12\\\"345\"\n\
        # test shortopt\n\
        connect pve_nina node=node1 plug=500 x\n\
        connect pve_nina node=node2 plug=501\n";

    #[test]
    fn escaping_and_short_options_print_as_upstream() {
        let (out, ok) = check_report("f.cfg", ESCAPES, &nodes());
        assert!(ok);
        assert_eq!(
            out,
            "[try] 0\n\
             [node1-cmd] fence_pve --ip=192.168.15.38 --username='fäöµ€' --password='12\"345' --plug=500 -x\n\
             [node2-cmd] fence_pve --ip=192.168.15.38 --username='fäöµ€' --password='12\"345' --plug=501\n\
             [node3-cmd] none\n\
             [try] 1\n\
             [node1-cmd] none\n\
             [node2-cmd] none\n\
             [node3-cmd] none\n"
        );
    }

    #[test]
    fn parallel_devices_run_together_and_devices_in_order() {
        let text = "device power:1 fence_apc ip=10.0.0.1 action=off ssh\n\
                    device power:2 fence_apc ip=10.0.0.2 action=off ssh delay=5\n\
                    \n\
                    connect power:2 node=node1 plug=1\n\
                    connect power:1 node=node1 plug=1\n\
                    connect power:1 node=node2 plug=2\n\
                    device switch fence_cisco_mds ip=10.0.1.1 action=off\n\
                    connect switch node=node1 plug=10\n";
        let (out, ok) = check_report("f.cfg", text, &nodes());
        assert!(ok);
        assert_eq!(
            out,
            "[try] 0\n\
             [node1-cmd] fence_apc --ip=10.0.0.1 --action=off --ssh --plug=1\n\
             [node1-cmd] fence_apc --ip=10.0.0.2 --action=off --ssh --delay=5 --plug=1\n\
             [node2-cmd] fence_apc --ip=10.0.0.1 --action=off --ssh --plug=2\n\
             [node3-cmd] none\n\
             [try] 1\n\
             [node1-cmd] fence_cisco_mds --ip=10.0.1.1 --action=off --plug=10\n\
             [node2-cmd] none\n\
             [node3-cmd] none\n\
             [try] 2\n\
             [node1-cmd] none\n\
             [node2-cmd] none\n\
             [node3-cmd] none\n"
        );
        let config = FenceConfig::parse(text).unwrap();
        assert_eq!(config.count_devices("node1"), 2);
        assert_eq!(config.count_devices("node2"), 1);
        assert!(!config.has_device("node3"));
    }

    #[test]
    fn errors_are_collected_with_their_lines_in_upstream_wording() {
        let text = "connect first_dev node=node1 plug=1\n\
                    device d fence_x ip=1\n\
                    device d:1 fence_x ip=2\n\
                    connect d:2 node=node1 plug=1\n\
                    connect d plug=1 x=2\n\
                    connect d node=node1 plug=1\n\
                    connect d:1 node=node1 plug=2\n\
                    device bad-name fence_x ip=1\n\
                    device q fence_x ip=\"open\n";
        let (out, ok) = check_report("fence_cfgs/e.cfg", text, &nodes());
        assert!(!ok);
        assert_eq!(
            out,
            "[FenceConfig] Encountered error(s) on parsing 'fence_cfgs/e.cfg':\n\
             line 1: device 'first_dev' must be declared before you can connect to it\n\
             line 3: device 'd:1' already declared\n\
             line 4: No parallel device 'd:2' found\n\
             line 5: node=nodename needed to connect device 'd' to node\n\
             line 7: node 'node1' already connected to device 'd:1'\n\
             line 8: invalid device name 'bad-name' (letters, digits and '_')\n\
             line 9: unterminated quote in arguments\n"
        );
    }

    #[test]
    fn write_back_is_byte_stable_and_pushed_lines_parse_back() {
        for text in [
            ESCAPES,
            "",
            "# only\n",
            "device a fence_x ip=1\n  connect a node=n1 plug=1  \nweird line",
            "\n\n",
        ] {
            let config = FenceConfig::parse(text).unwrap();
            assert_eq!(config.write(), text);
        }
        let mut config = FenceConfig::parse(ESCAPES).unwrap();
        config
            .push_device(DeviceDecl {
                name: "ipmi".into(),
                sub: 1,
                agent: "fence_ipmilan".into(),
                args: vec!["ip=10.0.0.9".into(), "password=it's \"x\"".into()],
            })
            .unwrap();
        config
            .push_connect(ConnectDecl {
                name: "ipmi".into(),
                sub: 1,
                node: "node3".into(),
                args: vec!["plug=3".into()],
            })
            .unwrap();
        let reparsed = FenceConfig::parse(&config.write()).unwrap();
        assert_eq!(reparsed, config);
        let commands = reparsed.commands("node3", 0).unwrap();
        assert_eq!(commands[0].args, ["ip=10.0.0.9", "password=it's \"x\"", "plug=3"]);
        // A duplicate is refused and changes nothing.
        let before = config.clone();
        assert!(
            config
                .push_connect(ConnectDecl {
                    name: "ipmi".into(),
                    sub: 1,
                    node: "node3".into(),
                    args: vec!["plug=4".into()],
                })
                .is_err()
        );
        assert_eq!(config, before);
    }

    #[test]
    fn ignored_lines_are_reported_not_fatal() {
        let config = FenceConfig::parse("device lonely fence_x\nfence_all yes\n").unwrap();
        assert_eq!(
            config.ignored,
            [
                (1, "device lonely fence_x".to_string()),
                (2, "fence_all yes".to_string())
            ]
        );
        assert!(config.devices().is_empty());
    }

    #[test]
    fn agent_argv_replaces_the_action() {
        let config = FenceConfig::parse(ESCAPES).unwrap();
        let command = &config.commands("node1", 0).unwrap()[0];
        assert_eq!(
            command.argv("off"),
            [
                "--ip=192.168.15.38",
                "--username=fäöµ€",
                "--password=12\"345",
                "--plug=500",
                "-x",
                "--action=off"
            ]
        );
        let with_action = FenceCommand {
            args: vec!["action=reboot".into(), "n=3".into()],
            ..command.clone()
        };
        assert_eq!(with_action.argv("status"), ["-n", "3", "--action=status"]);
    }

    #[test]
    fn shell_quoting_matches_upstream() {
        assert_eq!(shell_quote("192.168.1.1"), "192.168.1.1");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("'x'"), r"\''x'\'");
        assert_eq!(split_args(r#"a="b c" 'd\e' f\ g"#).unwrap(), ["a=b c", r"d\e", "f g"]);
    }
}
