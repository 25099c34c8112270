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
//!
//! Owns: the `ha-manager` front end. May import: `api`, `config`, `core`,
//! `net`; never `node` or `actors`.

pub mod args;
pub mod client;
pub mod format;

use std::ffi::OsString;
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

/// Writes `bytes` to stdout. A reader that went away (`ha-manager ... |
/// head`) is no error: there is nobody left to tell, and `print!` would
/// panic on it.
fn write_stdout(bytes: &[u8]) -> Result<(), String> {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("cannot write the output: {e}")),
        _ => Ok(()),
    }
}

fn local(command: &Command) -> Result<(), String> {
    let mut cmd = Cli::command();
    match command {
        Command::Completions { shell } => {
            // Into a buffer first: clap_complete panics when its writer fails.
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "ha-manager", &mut script);
            write_stdout(&script)
        }
        Command::Man { output } => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(|e| format!("cannot render the man page: {e}"))?;
            match output {
                Some(path) => std::fs::write(path, page).map_err(|e| format!("cannot write {}: {e}", path.display())),
                None => write_stdout(&page),
            }
        }
        _ => Ok(()),
    }
}

/// The arguments as text. No command, sid, node or option takes
/// anything but UTF-8, so an argument that is not is a usage error (exit
/// 2) rather than the panic of `std::env::args`.
pub fn utf8_args(args: impl IntoIterator<Item = OsString>) -> Result<Vec<String>, String> {
    args.into_iter()
        .enumerate()
        .map(|(i, arg)| match arg.into_string() {
            Ok(text) => Ok(text),
            Err(arg) if i == 0 => Ok(arg.to_string_lossy().into_owned()),
            Err(arg) => Err(format!("invalid argument '{}': not valid UTF-8", arg.to_string_lossy())),
        })
        .collect()
}

/// Runs `ha-manager` with the process's arguments (see [`utf8_args`]).
pub fn run_os(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    match utf8_args(args) {
        Ok(args) => run(args),
        Err(message) => {
            eprintln!("{message}");
            ExitCode::from(2)
        }
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
        Ok(Some(response)) => match write_stdout(format::render(&response, format).as_bytes()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("{message}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("{}", message.trim_end());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::ffi::OsStringExt;

    use super::*;

    #[test]
    fn arguments_that_are_not_utf8_are_a_usage_error() {
        let args = vec![
            OsString::from("ha-manager"),
            OsString::from("add"),
            OsString::from_vec(b"vm:1\xff0".to_vec()),
        ];
        assert_eq!(
            utf8_args(args).unwrap_err(),
            "invalid argument 'vm:1\u{fffd}0': not valid UTF-8"
        );
        let program = vec![OsString::from_vec(b"ha-\xffmanager".to_vec()), OsString::from("status")];
        assert_eq!(utf8_args(program).unwrap(), ["ha-\u{fffd}manager", "status"]);
    }
}
