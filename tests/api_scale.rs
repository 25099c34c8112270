//! The client API at scale: a status and a config of 100 000 resources
//! go through the real socket (the daemon's server, `ha-manager`'s
//! client), although their replies are far larger than a request may be.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hactor::api::plan::PlanContext;
use hactor::api::protocol::{MAX_REQUEST, Request, Response};
use hactor::api::server::{self, DirectStore, ServerConfig};
use hactor::cli::client;
use hactor::daemon::bench::scale::seeded_state;
use hactor::node::memory_store::MemoryStore;

const RESOURCES: usize = 100_000;

/// Serves `store` on a socket in `dir` from a thread of its own.
fn serve(store: MemoryStore, socket: PathBuf) {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let listener = server::bind(&socket).unwrap();
            let config = ServerConfig {
                socket,
                plan: PlanContext {
                    node: "node1".into(),
                    ..PlanContext::default()
                },
                fresh_secs: 30,
                crs: "basic".into(),
                store_timeout: Duration::from_secs(30),
            };
            server::start(
                listener,
                DirectStore {
                    store,
                    node: "node1".into(),
                },
                config,
            );
            ready_tx.send(()).unwrap();
            std::future::pending::<()>().await;
        });
    });
    ready_rx.recv().unwrap();
}

#[test]
fn a_status_and_config_of_100_000_resources_go_through_the_socket() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("hactor.sock");
    serve(MemoryStore::volatile(seeded_state(RESOURCES)), socket.clone());

    let started = Instant::now();
    let response = client::call(&socket, &Request::Status { verbose: false }).unwrap();
    let Response::Status { entries, .. } = response else {
        panic!("not a status: {response:?}")
    };
    let services: Vec<_> = entries.iter().filter(|e| e.kind == "service").collect();
    assert_eq!(services.len(), RESOURCES);
    assert_eq!(services[0].status, "vm:100 (node1, ignored)");
    assert!(services.iter().any(|e| e.sid.as_deref() == Some("vm:100099")));
    let size = serde_json::to_vec(&entries).unwrap().len();
    assert!(
        size > MAX_REQUEST,
        "the reply ({size} bytes) is larger than any request may be"
    );
    eprintln!("status of {RESOURCES} resources: {:?}", started.elapsed());

    let started = Instant::now();
    let Response::Resources { resources, digest } = client::call(&socket, &Request::Config { kind: None }).unwrap()
    else {
        panic!("not a config")
    };
    assert_eq!(resources.len(), RESOURCES);
    assert_eq!(digest.len(), 64);
    assert!(resources.iter().all(|r| r.state == "ignored"));
    eprintln!("config of {RESOURCES} resources: {:?}", started.elapsed());

    // A request is still bounded: the daemon refuses one over the limit.
    let huge = Request::Add {
        sid: format!("vm:{}", "1".repeat(MAX_REQUEST)),
        kind: None,
        options: Default::default(),
    };
    let err = client::call(&socket, &huge).unwrap_err();
    assert!(err.contains("too large"), "{err}");
}
