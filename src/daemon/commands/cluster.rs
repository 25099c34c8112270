//! `hactor cluster ...`: the membership commands (`node::membership`
//! does the work), run beside no daemon when they write the state
//! directory.

use std::process::ExitCode;

use super::exit_code;
use crate::daemon::args::ClusterCommand;
use crate::node::config::NodeConfig;
use crate::node::membership;
use crate::node::state_lock::StateDirLock;

/// `hactor cluster <command>` on the node `config` describes.
pub fn cluster(config: &NodeConfig, command: ClusterCommand) -> ExitCode {
    // The commands that write the state directory never run beside a
    // daemon (or another such command) on it.
    let _lock = match command {
        ClusterCommand::Init { .. } | ClusterCommand::Join { .. } => {
            match StateDirLock::acquire(&config.state_dir) {
                Ok(lock) => Some(lock),
                // A member's init or join is refused below for that
                // reason before it writes anything: say so rather than
                // that its daemon runs.
                Err(_) if matches!(membership::load(config), Ok(Some(_))) => None,
                Err(e) => {
                    eprintln!("hactor: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        _ => None,
    };
    exit_code(cluster_command(config, command))
}

/// What a membership command does, with its report on stdout.
fn cluster_command(config: &NodeConfig, command: ClusterCommand) -> Result<(), String> {
    match command {
        ClusterCommand::Init { name } => {
            let info = membership::init(config, &name)?;
            println!(
                "created cluster '{}' with node '{}' (id {})",
                info.cluster, info.node, info.id
            );
            Ok(())
        }
        ClusterCommand::AddNode { node, out } => {
            membership::add_node(config, &node, &out)?;
            println!(
                "join bundle for '{node}' written to {} (it holds a private key)",
                out.display()
            );
            Ok(())
        }
        ClusterCommand::Join { bundle } => {
            let text = std::fs::read_to_string(&bundle).map_err(|e| format!("{}: {e}", bundle.display()))?;
            let bundle: membership::JoinBundle =
                serde_json::from_str(&text).map_err(|e| format!("{}: not a join bundle: {e}", bundle.display()))?;
            let info = actix::System::new().block_on(membership::join(config, &bundle))?;
            println!("joined cluster '{}' as '{}' (id {})", info.cluster, info.node, info.id);
            Ok(())
        }
        ClusterCommand::RemoveNode { node } => {
            actix::System::new().block_on(membership::remove_node(config, &node))?;
            println!("removed '{node}' from the cluster");
            Ok(())
        }
        ClusterCommand::ResetLocal { peers } => {
            let peers = peers
                .iter()
                .map(|p| membership::parse_peer(p))
                .collect::<Result<Vec<_>, String>>()?;
            let outcome = actix::System::new().block_on(membership::reset_local(config, &peers))?;
            if let Some(moved) = &outcome.moved_to {
                println!("moved the old Raft state to {} (delete it when done)", moved.display());
            }
            println!(
                "'{}' rejoined cluster '{}' as a learner (new Raft id {}); start its daemon: it catches up \
                 from the other members and becomes a voter",
                outcome.info.node, outcome.info.cluster, outcome.info.id
            );
            Ok(())
        }
        ClusterCommand::Status { json } => {
            let view = actix::System::new().block_on(membership::status(config))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&view).map_err(|e| e.to_string())?);
            } else {
                print!("{}", membership::render(&view));
            }
            Ok(())
        }
    }
}
