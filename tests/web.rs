//! The web consoles in a real browser (headless Chromium over the DevTools
//! protocol, see `tests/browser`):
//! - the simulator page: power a node off with a click, run virtual time,
//!   see the node go `unknown` → `fence`, the fence acknowledged and its
//!   services started on the other nodes, in the tables and the timeline;
//!   export the session and replay it with `hactor-sim run`;
//! - the live view of a real 3-node cluster: kill a node's daemon, see its
//!   service move.
//!
//! Each test saves a screenshot under `<target>/tmp/web-screenshots/` and
//! prints how long page updates took after the server's change.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use hactor::node::local_cluster::{LocalCluster, LocalSpec};
use serde_json::Value;

mod browser;

use browser::{Browser, artifact_dir, summary};

const HACTOR_SIM: &str = env!("CARGO_BIN_EXE_hactor-sim");
const HACTOR: &str = env!("CARGO_BIN_EXE_hactor");

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `hactor-sim serve` on a free loopback port; returns its URL.
fn serve(args: &[&str]) -> (Server, String) {
    let mut child = Command::new(HACTOR_SIM)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("hactor-sim console on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    (Server(child), url)
}

/// Prints (and returns) the update delays the page measured: from the
/// server's change to the view on screen, and from a click to the next
/// view on screen.
fn report_latency(page: &mut Browser, name: &str) -> (f64, f64) {
    let to_f64 = |v: Value| -> Vec<f64> { v.as_array().unwrap().iter().filter_map(Value::as_f64).collect() };
    let lat = to_f64(page.eval("window.__lat"));
    let clicks = to_f64(page.eval("window.__clickLat"));
    let (median, max) = summary(&lat);
    let (click_median, click_max) = summary(&clicks);
    println!(
        "{name}: page update after a server change: median {median:.0} ms, max {max:.0} ms over {} updates; \
         click to updated page: median {click_median:.0} ms, max {click_max:.0} ms over {} clicks",
        lat.len(),
        clicks.len()
    );
    (median, click_median)
}

/// The goal is 100 ms on loopback (about 20-30 ms measured on an idle
/// machine); the test only fails far beyond it, since the suite shares two
/// cores with builds and other tests (the figure is printed either way).
fn assert_fast(median: f64) {
    assert!(median <= 500.0, "page updates took {median:.0} ms (median)");
}

/// The services table as `(sid, node, state)`.
fn services(page: &mut Browser) -> Vec<(String, String, String)> {
    let rows = page.eval(
        "[...document.querySelectorAll('#services tbody tr')].map(r => \
         [r.dataset.sid, r.querySelector('.node').textContent, r.querySelector('.state').textContent])",
    );
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cell = |i: usize| r[i].as_str().unwrap().to_string();
            (cell(0), cell(1), cell(2))
        })
        .collect()
}

#[test]
fn simulator_page_power_off_fence_recover_export_replay() {
    let Some(mut page) = Browser::launch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let (_server, url) = serve(&["--nodes", "3", "--services", "6", "--paused"]);
    page.navigate(&url);
    page.wait_for(
        "three nodes and six services",
        Duration::from_secs(20),
        "document.querySelectorAll('#nodes tbody tr').length === 3 && \
         document.querySelectorAll('#services tbody tr').length === 6",
    );
    // Virtual time: fast, then run until every service runs.
    page.eval("(() => { const s = document.querySelector('#speed'); s.value = '20'; s.dispatchEvent(new Event('change')); })()");
    page.click("#run");
    page.wait_for(
        "every service started",
        Duration::from_secs(60),
        "[...document.querySelectorAll('#services .state')].every(c => c.textContent === 'started')",
    );
    let before = services(&mut page);
    let on_node2: Vec<String> = before.iter().filter(|s| s.1 == "node2").map(|s| s.0.clone()).collect();
    assert_eq!(on_node2.len(), 2, "{before:?}");

    page.click("#node-node2 button.power");
    page.wait_for(
        "node2 unknown, then fenced",
        Duration::from_secs(60),
        "(window.__nodeHistory.node2 || []).join(',').includes('online,unknown,fence')",
    );
    page.wait_for(
        "the fence acknowledged and node2's services started elsewhere",
        Duration::from_secs(60),
        "document.querySelector('#timeline line.mark[data-node=\"node2\"][data-kind=\"fence acknowledged\"]') && \
         [...document.querySelectorAll('#services tbody tr')].every(r => \
            r.querySelector('.node').textContent !== 'node2' && r.querySelector('.state').textContent === 'started')",
    );
    page.click("#pause");
    page.wait_for(
        "paused",
        Duration::from_secs(10),
        "document.querySelector('#summary').textContent.includes('paused')",
    );
    let after = services(&mut page);
    for sid in &on_node2 {
        let moved = after.iter().find(|s| &s.0 == sid).unwrap();
        assert_ne!(moved.1, "node2", "{after:?}");
        // The timeline shows the service as a bar on its new node, and the
        // fence on node2's lane.
        let bar = page.eval(&format!(
            "!!document.querySelector('#timeline rect.bar[data-sid=\"{sid}\"][data-node=\"{}\"][data-state=\"started\"]')",
            moved.1
        ));
        assert_eq!(bar, true, "no timeline bar for {sid} on {}", moved.1);
    }
    for kind in ["unknown", "fence", "fence acknowledged", "recovery"] {
        let mark = page.eval(&format!(
            "!!document.querySelector('#timeline line.mark[data-node=\"node2\"][data-kind=\"{kind}\"]')"
        ));
        assert_eq!(mark, true, "no '{kind}' mark on node2's lane");
    }
    let log = page.eval("document.querySelector('#log').textContent");
    assert!(
        log.as_str()
            .unwrap()
            .contains("fencing: acknowledged - got agent lock for node 'node2'"),
        "the log shows the fence acknowledgement"
    );
    page.screenshot(&artifact_dir().join("simulator.png"));

    // Export, then replay the folder with `hactor-sim run`.
    let export = tmp.path().join("session");
    let quoted = serde_json::to_string(&export.display().to_string()).unwrap();
    page.eval(&format!("document.querySelector('#export-dir').value = {quoted}"));
    page.click("#export");
    page.wait_for(
        "the export",
        Duration::from_secs(10),
        "document.querySelector('#message').textContent.startsWith('exported to')",
    );
    replay_matches(&export);
    let (median, _) = report_latency(&mut page, "simulator");
    assert_fast(median);
}

/// `hactor-sim run` on an exported folder: the log starts with the
/// session's log, which holds the fence.
fn replay_matches(export: &Path) {
    let session = std::fs::read_to_string(export.join("log.session")).unwrap();
    assert!(session.contains("node 'node2': state changed from 'unknown' => 'fence'"));
    let out = Command::new(HACTOR_SIM).arg("run").arg(export).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let replay = String::from_utf8(out.stdout).unwrap();
    assert!(
        replay.starts_with(&session),
        "the replay differs from the session:\n--- session\n{session}\n--- replay\n{replay}"
    );
}

#[test]
fn live_view_of_a_real_cluster_shows_a_failover() {
    let Some(mut page) = Browser::launch() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let base_port = 17_000 + (std::process::id() % 500) as u16 * 8;
    let spec = LocalSpec {
        nodes: 3,
        services: 3,
        base_port,
        marker: format!("8{base_port}{}", std::process::id() % 1000),
        // Every node serves its live view on a free port (web.addr says
        // which).
        extra: "[web]\nlisten = \"127.0.0.1:0\"\npoll_ms = 50\n".into(),
        ..LocalSpec::default()
    };
    let mut cluster = LocalCluster::create(&tmp.path().join("cluster"), Path::new(HACTOR), spec).unwrap();
    // Lose a node that runs a service, and watch from another node.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let placement = loop {
        let placement = cluster.placement(0);
        if placement.len() == 3 && placement.iter().all(|s| s.2 == "started") {
            break placement;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "services not started: {placement:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (victim, lost) = (placement[0].0.clone(), placement[0].1.clone());
    let watcher = cluster.nodes.iter().position(|n| n.name != lost).unwrap();
    let addr = std::fs::read_to_string(cluster.nodes[watcher].dir.join("web.addr")).unwrap();
    page.navigate(&format!("http://{}/", addr.trim()));
    page.wait_for(
        "three services started",
        Duration::from_secs(60),
        "document.querySelectorAll('#nodes tbody tr').length === 3 && \
         [...document.querySelectorAll('#services .state')].filter(c => c.textContent === 'started').length === 3",
    );
    assert_eq!(
        page.eval("document.querySelector('#controls').hidden"),
        true,
        "no controls"
    );
    cluster.kill(cluster.index(&lost).unwrap());
    let took = page.wait_for(
        "the lost node's service started on another node",
        Duration::from_secs(60),
        &format!(
            "[...document.querySelectorAll('#services tbody tr')].some(r => r.dataset.sid === '{victim}' && \
             r.querySelector('.node').textContent !== '{lost}' && r.querySelector('.state').textContent === 'started')"
        ),
    );
    println!(
        "live view: {victim} shown running elsewhere {:.1} s after the kill",
        took.as_secs_f64()
    );
    let history = page.eval(&format!("(window.__nodeHistory['{lost}'] || []).join(',')"));
    // Which of `unknown` and `fence` the page catches depends on the
    // reads falling between the master's rounds (fast profile: the fence
    // may pass within one): the node left `online` for one of them.
    let history = history.as_str().unwrap().to_string();
    assert!(
        history.starts_with("online,") && (history.contains("unknown") || history.contains("fence")),
        "{lost} was lost: {history}"
    );
    let moved = services(&mut page).into_iter().find(|s| s.0 == victim).unwrap();
    let bar = page.eval(&format!(
        "!!document.querySelector('#timeline rect.bar[data-sid=\"{victim}\"][data-node=\"{}\"]')",
        moved.1
    ));
    assert_eq!(bar, true, "the timeline shows {victim} on {}", moved.1);
    let log = page.eval("document.querySelector('#log').textContent");
    let log = log.as_str().unwrap();
    assert!(
        log.contains(&format!("fencing: acknowledged - got agent lock for node '{lost}'"))
            && log.contains(&format!(
                "recover service '{victim}' from fenced node '{lost}' to node '{}'",
                moved.1
            )),
        "the decisions show the fence and the recovery: {log}"
    );
    for kind in ["fence acknowledged", "recovery"] {
        let mark = page.eval(&format!(
            "!!document.querySelector('#timeline line.mark[data-node=\"{lost}\"][data-kind=\"{kind}\"]')"
        ));
        assert_eq!(mark, true, "no '{kind}' mark on {lost}'s lane");
    }
    page.screenshot(&artifact_dir().join("live.png"));
    let (median, _) = report_latency(&mut page, "live view");
    assert_fast(median);
    // Nothing in the view changes the cluster: every other method is refused.
    let refused = page.eval(&format!(
        "fetch('http://{}/api/view', {{method: 'POST'}}).then(r => r.status)",
        addr.trim()
    ));
    assert_eq!(refused, 405);
    cluster.shutdown();
}
