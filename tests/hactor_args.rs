//! The `hactor` binary refuses out-of-range input before it starts
//! anything (issue 11): the reported configuration values, a state
//! directory that is a file, and `local-cluster` arguments whose port
//! arithmetic would overflow.

use std::path::Path;
use std::process::{Command, Output};

fn hactor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hactor")).args(args).output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn config(dir: &Path, state_dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("node1.toml");
    let text = format!(
        "node = \"node1\"\nstate_dir = \"{}\"\nsocket = \"{}\"\n[watchdog]\nbackend = \"process\"\n{extra}",
        state_dir.display(),
        dir.join("hactor.sock").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn overflowing_timings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra, key) in [
        (
            "[timing]\nwatchdog_device_timeout_ms = 18446744073709546616\n",
            "timing.watchdog_device_timeout_ms: 18446744073709546616 is out of range",
        ),
        (
            "[timing]\nraft_election_ms = 9223372036854775808\n",
            "timing.raft_election_ms: 9223372036854775808 is out of range",
        ),
    ] {
        let path = config(dir.path(), &dir.path().join("state"), extra);
        let output = hactor(&["--config", path.to_str().unwrap()]);
        assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
        let text = stderr(&output);
        assert!(
            text.contains(&path.display().to_string()) && text.contains(key),
            "{text}"
        );
        assert!(!dir.path().join("state").exists(), "nothing was created");
    }
}

#[test]
fn a_state_dir_that_is_a_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("state");
    std::fs::write(&file, "").unwrap();
    let path = config(dir.path(), &file, "");
    let output = hactor(&["--config", path.to_str().unwrap()]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains(&format!("state_dir: {} exists and is not a directory", file.display())),
        "{}",
        stderr(&output)
    );
    assert!(!dir.path().join("hactor.sock").exists(), "the daemon did not start");
}

#[test]
fn local_cluster_arguments_are_bounded() {
    for args in [
        &["local-cluster", "--port", "65535"][..],
        &["local-cluster", "--port", "0"],
        &["local-cluster", "--services", "18446744073709551615"],
        &["local-cluster", "--nodes", "10"],
    ] {
        let output = hactor(args);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", stderr(&output));
        assert!(stderr(&output).contains("is not in"), "{args:?}: {}", stderr(&output));
    }
}
