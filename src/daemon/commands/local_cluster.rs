//! `hactor local-cluster`: a demo cluster of real daemons on this
//! machine's loopback (`node::local_cluster` forms and stops it).

use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};

use crate::node::local_cluster::{LocalCluster, LocalSpec};

/// The cluster `hactor local-cluster` forms from its arguments; `--web`
/// gives every node a live view on a free loopback port.
pub fn local_spec(nodes: u16, services: u64, port: u16, profile: String, web: bool) -> LocalSpec {
    LocalSpec {
        nodes: nodes as usize,
        services: usize::try_from(services).unwrap_or(0),
        profile,
        base_port: port,
        marker: format!("{port}000"),
        extra: if web {
            "[web]\nlisten = \"127.0.0.1:0\"\n".into()
        } else {
            String::new()
        },
        script: None,
    }
}

/// `hactor local-cluster`: forms the cluster, tells how to use it, and
/// reports daemons that die until Ctrl-C.
pub fn local_cluster(dir: &Path, spec: LocalSpec) -> Result<(), String> {
    let program = std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
    let ha_manager = program.with_file_name("ha-manager");
    println!("forming a {}-node cluster under {} ...", spec.nodes, dir.display());
    let mut cluster = LocalCluster::create(dir, &program, spec)?;
    let services = cluster.spec.services;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline && (0..services).any(|s| cluster.service_pids(s).len() != 1) {
        std::thread::sleep(Duration::from_millis(100));
    }
    println!();
    for node in &cluster.nodes {
        println!(
            "{}  127.0.0.1:{}  pid {}  log {}",
            node.name,
            node.port,
            node.child.as_ref().map(|c| c.id()).unwrap_or(0),
            cluster.dir.join(format!("{}.log", node.name)).display()
        );
        if let Ok(addr) = std::fs::read_to_string(node.dir.join("web.addr")) {
            println!("       live view: http://{}/", addr.trim());
        }
    }
    let socket = cluster.nodes[0].dir.join("hactor.sock");
    println!(
        "\nwatch it:     watch -n1 {} --socket {} status\n\
         fail a node:  kill -9 $(cat {dir}/node2/hactor.pid)   (or kill -STOP: its fence guard kills it ~1 s later)\n\
         restart it:   {} --config {dir}/node2.toml >> {dir}/node2.log 2>&1 &\n\
         stop:         Ctrl-C (kills every node's daemon, restarted ones too; their fence guards stop the services)\n",
        ha_manager.display(),
        socket.display(),
        program.display(),
        dir = cluster.dir.display()
    );
    actix::System::new().block_on(async {
        let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
        else {
            return;
        };
        loop {
            tokio::select! {
                _ = interrupt.recv() => break,
                _ = terminate.recv() => break,
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
            for node in &mut cluster.nodes {
                if let Some(child) = node.child.as_mut()
                    && let Ok(Some(status)) = child.try_wait()
                {
                    println!(
                        "{} stopped ({status}); start it again with: {} --config {} >> {} 2>&1 &",
                        node.name,
                        program.display(),
                        node.config.display(),
                        cluster.dir.join(format!("{}.log", node.name)).display()
                    );
                    node.child = None;
                }
            }
        }
    });
    println!("stopping the cluster");
    cluster.shutdown();
    Ok(())
}
