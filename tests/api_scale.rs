//! The client API at scale: a status and a config of 100 000 resources
//! go through the real socket (the daemon's server, `ha-manager`'s
//! client), although their replies are far larger than a request may be.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use hactor::api::plan::PlanContext;
use hactor::api::protocol::{MAX_REQUEST, Request, Response};
use hactor::api::server::{self, ServerConfig, StoreAccess, StoreFuture};
use hactor::cli::client;
use hactor::core::store::{Op, Reply, Snapshot, StoreError};
use hactor::node::memory_store::MemoryStore;
use hactor::node::scale::seeded_state;

const RESOURCES: usize = 100_000;

/// The single-node store, answering at once.
#[derive(Clone)]
struct Direct(MemoryStore);

impl StoreAccess for Direct {
    fn snapshot(&self) -> StoreFuture<Result<Snapshot, String>> {
        let snapshot = Snapshot {
            state: self.0.snapshot(),
            quorate: self.0.quorate(),
            members: [("node1".to_string(), true)].into(),
        };
        Box::pin(async move { Ok(snapshot) })
    }

    fn apply(&self, ops: Vec<Op>) -> StoreFuture<Result<Result<Vec<Reply>, StoreError>, String>> {
        let result = self.0.apply(ops);
        Box::pin(async move { Ok(result) })
    }
}

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
            server::start(listener, Direct(store), config);
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
