//! `ha-manager`: the command line over the local daemon's socket.
//!
//! | module | what |
//! |---|---|
//! | [`args`] | the clap definitions (also the source of the completions and the man page) |
//! | [`client`] | one request over the Unix socket |
//! | [`format`] | text and JSON output |
//!
//! Exit codes: 0 done; 1 the daemon refused or failed (one line on
//! stderr, nothing changed); 2 a usage error.

pub mod args;
pub mod client;
pub mod format;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::api::protocol::{GroupOptions, MoveTask, Request, ResourceOptions, RuleOptions};
use crate::config::value::parse_bool;

use self::args::{Cli, Command, CrmCommand, EditArgs, Maintenance, RulesCommand};

fn resource_options(a: args::ResourceArgs) -> ResourceOptions {
    ResourceOptions {
        state: a.state,
        group: a.group,
        max_restart: a.max_restart,
        max_relocate: a.max_relocate,
        comment: a.comment,
        failback: a.failback,
    }
}

fn group_options(a: args::GroupArgs) -> GroupOptions {
    GroupOptions {
        nodes: a.nodes,
        restricted: a.restricted,
        nofailback: a.nofailback,
        comment: a.comment,
    }
}

fn rule_options(a: args::RuleArgs) -> RuleOptions {
    RuleOptions {
        resources: a.resources,
        nodes: a.nodes,
        strict: a.strict,
        affinity: a.affinity,
        disable: a.disable,
        comment: a.comment,
    }
}

fn delete_list(edit: &EditArgs) -> Vec<String> {
    edit.delete.iter().cloned().collect()
}

fn flag(name: &str, value: Option<&str>, default: bool) -> Result<bool, String> {
    match value {
        None => Ok(default),
        Some(v) => parse_bool(v).ok_or_else(|| format!("{name}: type check ('boolean') failed - got '{v}'")),
    }
}

/// The request a command sends (`None`: handled locally).
pub fn request(command: Command) -> Result<Option<Request>, String> {
    let request = match command {
        Command::Status { verbose } => Request::Status {
            verbose: flag("verbose", verbose.as_deref(), false)?,
        },
        Command::Config { kind } => Request::Config { kind },
        Command::Add { sid, kind, options } => Request::Add {
            sid,
            kind,
            options: resource_options(options),
        },
        Command::Set { sid, options, edit } => Request::Set {
            sid,
            options: resource_options(options),
            delete: delete_list(&edit),
            digest: edit.digest,
        },
        Command::Remove { sid, purge } => Request::Remove {
            sid,
            purge: flag("purge", purge.as_deref(), true)?,
        },
        Command::Migrate { sid, node } | Command::CrmCommand(CrmCommand::Migrate { sid, node }) => Request::Move {
            task: MoveTask::Migrate,
            sid,
            node,
        },
        Command::Relocate { sid, node } | Command::CrmCommand(CrmCommand::Relocate { sid, node }) => Request::Move {
            task: MoveTask::Relocate,
            sid,
            node,
        },
        Command::CrmCommand(CrmCommand::Stop { sid, timeout }) => Request::Stop { sid, timeout },
        Command::CrmCommand(CrmCommand::NodeMaintenance(m)) => match m {
            Maintenance::Enable { node } => Request::NodeMaintenance { enable: true, node },
            Maintenance::Disable { node } => Request::NodeMaintenance { enable: false, node },
        },
        Command::CrmCommand(CrmCommand::DisarmHa { mode }) => Request::DisarmHa { mode },
        Command::CrmCommand(CrmCommand::ArmHa) => Request::ArmHa,
        Command::Groupconfig => Request::GroupConfig,
        Command::Groupadd { group, options } => Request::GroupAdd {
            group,
            options: group_options(options),
        },
        Command::Groupset { group, options, edit } => Request::GroupSet {
            group,
            options: group_options(options),
            delete: delete_list(&edit),
            digest: edit.digest,
        },
        Command::Groupremove { group } => Request::GroupRemove { group },
        Command::Rules(rules) => match rules {
            RulesCommand::Config { kind, resource } | RulesCommand::List { kind, resource } => {
                Request::RulesConfig { kind, resource }
            }
            RulesCommand::Add { kind, rule, options } => Request::RulesAdd {
                kind,
                rule,
                options: rule_options(options),
            },
            RulesCommand::Set {
                kind,
                rule,
                options,
                edit,
            } => Request::RulesSet {
                kind,
                rule,
                options: rule_options(options),
                delete: delete_list(&edit),
                digest: edit.digest,
            },
            RulesCommand::Remove { rule } => Request::RulesRemove { rule },
            RulesCommand::Check { file } => Request::RulesCheck {
                rules_cfg: match file {
                    None => None,
                    Some(path) => Some(
                        std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?,
                    ),
                },
            },
        },
        Command::Completions { .. } | Command::Man { .. } => return Ok(None),
    };
    Ok(Some(request))
}

fn local(command: &Command) -> Result<(), String> {
    let mut cmd = Cli::command();
    match command {
        Command::Completions { shell } => {
            clap_complete::generate(*shell, &mut cmd, "ha-manager", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { output } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| format!("cannot render the man page: {e}"))?;
            match output {
                Some(path) => std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => std::io::stdout()
                    .write_all(&page)
                    .map_err(|e| format!("cannot write the man page: {e}")),
            }
        }
        _ => Ok(()),
    }
}

/// Runs `ha-manager` with these arguments (the program name first).
pub fn run(args: Vec<String>) -> ExitCode {
    let cli = match Cli::try_parse_from(args::normalize(args)) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            // --help, --version
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // One line: clap's first line, without its usage block.
            let text = e.to_string();
            let first = text.lines().next().unwrap_or("invalid arguments");
            eprintln!("{}", first.strip_prefix("error: ").unwrap_or(first));
            return ExitCode::from(2);
        }
    };
    let (socket, format) = (cli.socket.clone(), cli.output_format);
    let result = match &cli.command {
        Command::Completions { .. } | Command::Man { .. } => local(&cli.command).map(|()| None),
        _ => request(cli.command).and_then(|r| match r {
            Some(request) => client::call(&socket, &request).map(Some),
            None => Ok(None),
        }),
    };
    match result {
        Ok(Some(response)) => {
            print!("{}", format::render(&response, format));
            ExitCode::SUCCESS
        }
        Ok(None) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}
