//! The command line of `ha-manager`, as upstream spells it (spec §7.2):
//! options with underscores (`--max_restart`; the dashed spelling is an
//! alias), booleans that take an optional value (`--failback`,
//! `--failback 0`), and the single-dash long options upstream's CLI also
//! accepts (`-max_restart 2`, see [`normalize`]).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::core::timing::MAX_TIMEOUT_SECS;
use crate::net::DEFAULT_SOCKET;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Upstream's text.
    Text,
    /// One line of JSON.
    Json,
    /// Indented JSON.
    JsonPretty,
}

#[derive(Debug, Parser)]
#[command(
    name = "ha-manager",
    version,
    about = "HA manager command line: configure and control the hactor HA stack through the local daemon",
    propagate_version = true
)]
pub struct Cli {
    /// Socket of the local hactor daemon.
    #[arg(long, global = true, env = "HACTOR_SOCKET", default_value = DEFAULT_SOCKET, value_name = "PATH")]
    pub socket: PathBuf,
    /// Output format.
    #[arg(long = "output-format", global = true, value_enum, default_value_t = OutputFormat::Text)]
    pub output_format: OutputFormat,
    #[command(subcommand)]
    pub command: Command,
}

/// Options of `add` and `set`.
#[derive(Debug, Clone, Default, Args)]
pub struct ResourceArgs {
    /// Requested state: started, stopped, enabled, disabled or ignored.
    #[arg(long)]
    pub state: Option<String>,
    /// HA group (deprecated: use rules).
    #[arg(long)]
    pub group: Option<String>,
    /// Start retries on the same node.
    #[arg(long = "max_restart", visible_alias = "max-restart", value_name = "N")]
    pub max_restart: Option<u32>,
    /// Relocations after failed starts.
    #[arg(long = "max_relocate", visible_alias = "max-relocate", value_name = "N")]
    pub max_relocate: Option<u32>,
    /// Description.
    #[arg(long, allow_hyphen_values = true)]
    pub comment: Option<String>,
    /// Move back to a preferred node when it comes online (boolean).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
    pub failback: Option<String>,
}

/// Options of `groupadd` and `groupset`.
#[derive(Debug, Clone, Default, Args)]
pub struct GroupArgs {
    /// Member nodes: `node[:priority]` list.
    #[arg(long)]
    pub nodes: Option<String>,
    /// Services may run only on member nodes (boolean).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
    pub restricted: Option<String>,
    /// Do not move back to a higher-priority node (boolean).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
    pub nofailback: Option<String>,
    /// Description.
    #[arg(long, allow_hyphen_values = true)]
    pub comment: Option<String>,
}

/// Options of `rules add` and `rules set`.
#[derive(Debug, Clone, Default, Args)]
pub struct RuleArgs {
    /// Resources the rule applies to (sid list).
    #[arg(long)]
    pub resources: Option<String>,
    /// node-affinity: `node[:priority]` list.
    #[arg(long)]
    pub nodes: Option<String>,
    /// node-affinity: only the listed nodes (boolean).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
    pub strict: Option<String>,
    /// resource-affinity: positive (together) or negative (apart).
    #[arg(long)]
    pub affinity: Option<String>,
    /// Keep the rule but do not apply it (boolean).
    #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
    pub disable: Option<String>,
    /// Description.
    #[arg(long, allow_hyphen_values = true)]
    pub comment: Option<String>,
}

/// Options of edits that upstream guards with a digest.
#[derive(Debug, Clone, Default, Args)]
pub struct EditArgs {
    /// Properties to reset to their defaults (list).
    #[arg(long, value_name = "LIST")]
    pub delete: Option<String>,
    /// Refuse the change unless the configuration still has this digest.
    #[arg(long)]
    pub digest: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show the HA manager status.
    Status {
        /// Append the full cluster state (boolean).
        #[arg(long, short, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
        verbose: Option<String>,
    },
    /// List the HA resources.
    Config {
        /// Only resources of this type.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
    },
    /// Add a resource to HA.
    Add {
        /// Service id (`vm:100`, `ct:101`, `proc:web`; a bare number is a VM).
        sid: String,
        /// The resource type; must match the sid's.
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        #[command(flatten)]
        options: ResourceArgs,
    },
    /// Change a resource's HA settings.
    Set {
        sid: String,
        #[command(flatten)]
        options: ResourceArgs,
        #[command(flatten)]
        edit: EditArgs,
    },
    /// Remove a resource from HA.
    Remove {
        sid: String,
        /// Also remove it from every rule, and rules left empty (boolean, default 1).
        #[arg(long, num_args = 0..=1, default_missing_value = "1", value_name = "BOOLEAN")]
        purge: Option<String>,
    },
    /// Migrate a resource to another node (online where possible).
    Migrate { sid: String, node: String },
    /// Relocate a resource to another node (stop, move, start).
    Relocate { sid: String, node: String },
    /// Queue a command for the cluster resource manager.
    #[command(name = "crm-command", subcommand)]
    CrmCommand(CrmCommand),
    /// List the HA groups (deprecated: use rules).
    Groupconfig,
    /// Create an HA group (deprecated: use rules).
    Groupadd {
        group: String,
        #[command(flatten)]
        options: GroupArgs,
    },
    /// Change an HA group.
    Groupset {
        group: String,
        #[command(flatten)]
        options: GroupArgs,
        #[command(flatten)]
        edit: EditArgs,
    },
    /// Remove an HA group.
    Groupremove { group: String },
    /// Placement rules (node-affinity, resource-affinity).
    #[command(subcommand)]
    Rules(RulesCommand),
    /// Print a shell completion script.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), or write it to a file.
    Man {
        #[arg(long, short, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum CrmCommand {
    /// Migrate a resource.
    Migrate { sid: String, node: String },
    /// Relocate a resource.
    Relocate { sid: String, node: String },
    /// Stop a resource; timeout in seconds (at most 86400, one day), 0 stops hard.
    Stop {
        sid: String,
        #[arg(value_parser = clap::value_parser!(u64).range(0..=MAX_TIMEOUT_SECS))]
        timeout: u64,
    },
    /// Put a node into maintenance or take it out.
    #[command(name = "node-maintenance", subcommand)]
    NodeMaintenance(Maintenance),
    /// Disarm the HA stack: freeze or ignore the resources.
    #[command(name = "disarm-ha")]
    DisarmHa {
        /// freeze or ignore.
        #[arg(value_name = "RESOURCE_MODE")]
        mode: String,
    },
    /// Re-arm a disarmed HA stack.
    #[command(name = "arm-ha")]
    ArmHa,
}

#[derive(Debug, Subcommand)]
pub enum Maintenance {
    /// Move the node's resources away and keep them off.
    Enable { node: String },
    /// End the node's maintenance.
    Disable { node: String },
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show the rules with their state.
    Config {
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        /// Only rules that name this resource.
        #[arg(long)]
        resource: Option<String>,
    },
    /// Same as `config`.
    List {
        #[arg(long = "type", value_name = "TYPE")]
        kind: Option<String>,
        #[arg(long)]
        resource: Option<String>,
    },
    /// Add a rule.
    Add {
        /// node-affinity or resource-affinity.
        #[arg(value_name = "TYPE")]
        kind: String,
        rule: String,
        #[command(flatten)]
        options: RuleArgs,
    },
    /// Change a rule.
    Set {
        #[arg(value_name = "TYPE")]
        kind: String,
        rule: String,
        #[command(flatten)]
        options: RuleArgs,
        #[command(flatten)]
        edit: EditArgs,
    },
    /// Remove a rule.
    Remove { rule: String },
    /// Show which rules the feasibility checks drop and why (upstream's
    /// `Drop rule '<id>', because <message>.` lines), against the cluster's
    /// nodes: the configured rules, or a candidate rules.cfg file.
    Check {
        /// Check this rules.cfg instead of the configured rules (nothing is
        /// changed either way).
        #[arg(long, value_name = "FILE")]
        file: Option<std::path::PathBuf>,
    },
}

/// Every long option name of the command tree (aliases included).
fn long_names(command: &clap::Command, names: &mut std::collections::BTreeSet<String>) {
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            names.insert(long.to_string());
        }
        if let Some(aliases) = arg.get_all_aliases() {
            names.extend(aliases.into_iter().map(str::to_string));
        }
    }
    for sub in command.get_subcommands() {
        long_names(sub, names);
    }
}

/// Turns upstream's single-dash long options (`-max_restart 2`,
/// `-state=stopped`) into clap's double-dash form. Only known option names
/// are touched, so values such as `-1` pass unchanged.
pub fn normalize(args: Vec<String>) -> Vec<String> {
    let mut names = std::collections::BTreeSet::new();
    long_names(&Cli::command(), &mut names);
    let mut after_double_dash = false;
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| {
            if arg == "--" {
                after_double_dash = true;
            }
            let single = i > 0 && !after_double_dash && arg.starts_with('-') && !arg.starts_with("--");
            let name = arg.trim_start_matches('-').split('=').next().unwrap_or_default();
            if single && name.len() > 1 && names.contains(name) {
                format!("-{arg}")
            } else {
                arg
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Cli {
        let args = normalize(args.iter().map(|s| s.to_string()).collect());
        Cli::try_parse_from(args).unwrap()
    }

    #[test]
    fn the_definitions_are_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn upstream_spellings_are_accepted() {
        for args in [
            &["ha-manager", "add", "vm:100", "--max_restart", "2", "--failback", "0"][..],
            &["ha-manager", "add", "vm:100", "-max_restart", "2", "-failback", "0"],
            &["ha-manager", "add", "vm:100", "--max-restart=2", "--failback=0"],
            &["ha-manager", "add", "vm:100", "-max_restart=2", "--failback", "0"],
        ] {
            let Command::Add { sid, options, .. } = parse(args).command else {
                panic!()
            };
            assert_eq!(sid, "vm:100");
            assert_eq!(options.max_restart, Some(2), "{args:?}");
            assert_eq!(options.failback.as_deref(), Some("0"), "{args:?}");
        }
        let Command::Add { options, .. } = parse(&["ha-manager", "add", "vm:100", "--failback"]).command else {
            panic!()
        };
        assert_eq!(options.failback.as_deref(), Some("1"));
        let Command::Set { options, .. } = parse(&["ha-manager", "set", "vm:100", "--comment", "-x"]).command else {
            panic!()
        };
        assert_eq!(options.comment.as_deref(), Some("-x"));
    }

    #[test]
    fn crm_commands_and_globals() {
        let cli = parse(&[
            "ha-manager",
            "crm-command",
            "node-maintenance",
            "enable",
            "node2",
            "--output-format",
            "json",
            "--socket",
            "/tmp/s",
        ]);
        assert_eq!(cli.output_format, OutputFormat::Json);
        assert_eq!(cli.socket, PathBuf::from("/tmp/s"));
        assert!(matches!(
            cli.command,
            Command::CrmCommand(CrmCommand::NodeMaintenance(Maintenance::Enable { .. }))
        ));
        let cli = parse(&["ha-manager", "crm-command", "stop", "vm:100", "0"]);
        assert!(matches!(
            cli.command,
            Command::CrmCommand(CrmCommand::Stop { timeout: 0, .. })
        ));
        assert!(Cli::try_parse_from(["ha-manager", "crm-command", "stop", "vm:100", "-1"]).is_err());
        let cli = parse(&["ha-manager", "crm-command", "stop", "vm:100", "86400"]);
        assert!(matches!(
            cli.command,
            Command::CrmCommand(CrmCommand::Stop { timeout: 86_400, .. })
        ));
        // Issue 11 §2: accepted, then dropped by the CRM or panicking an agent.
        for timeout in ["18446744073709551615", "9223372036854775807", "86401"] {
            let err = Cli::try_parse_from(["ha-manager", "crm-command", "stop", "vm:100", timeout]).unwrap_err();
            assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation, "{timeout}");
            let text = err.to_string();
            assert!(text.contains(&format!("{timeout} is not in 0..=86400")), "{text}");
        }
    }
}
