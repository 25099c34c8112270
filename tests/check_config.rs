//! `hactor check-config` (issue 16): a node configuration checked as the
//! daemon reads it, with the timing inequalities and their figures; the
//! HA configuration of a running node; a fence.cfg shown try by try.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn hactor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hactor")).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn write_config(dir: &Path, extra: &str) -> std::path::PathBuf {
    let path = dir.join("node1.toml");
    let config = format!(
        "node = \"node1\"\nstate_dir = \"{}\"\nsocket = \"{}\"\n[watchdog]\nbackend = \"process\"\n{extra}",
        dir.join("state").display(),
        dir.join("hactor.sock").display()
    );
    std::fs::write(&path, config).unwrap();
    path
}

#[test]
fn a_valid_config_prints_the_inequalities_with_figures() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "");
    let out = hactor(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with(&format!("{}: valid\n", path.display())), "{stdout}");
    assert!(
        stdout.contains(
            "ok       lease outlasts a self-fence: lease_ms 6500 >= round_ms 1000 + watchdog_client_timeout_ms \
             4000 + watchdog_device_timeout_ms 1000 + margin_ms 500 = 6500"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("no daemon at"), "{stdout}");
    assert!(!dir.path().join("state").exists(), "a check creates nothing");
}

#[test]
fn a_refused_config_names_the_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[timing]\nround_ms = 1000\nlease_ms = 3000\n");
    let out = hactor(&["check-config", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("line 8: unsafe timing: lease_ms 3000 >= round_ms 1000"),
        "{stderr}"
    );
    assert!(stderr.contains("= 6500"), "{stderr}");
    std::fs::write(&path, "node = \"n1\"\nbogus = 1\n").unwrap();
    let out = hactor(&["check-config", "-c", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("line 2: unknown field `bogus`"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_fence_config_prints_try_by_try_or_its_errors() {
    let dir = tempfile::tempdir().unwrap();
    let fence = dir.path().join("fence.cfg");
    std::fs::write(
        &fence,
        "device ipmi fence_ipmilan ip=10.0.0.1 username=admin password=\"se cret\"\n\
         connect ipmi node=node1 ipport=623\n\
         connect ipmi node=node2 ipport=624\n\
         device pdu:1 fence_apc ip=10.0.0.2\n\
         device pdu:2 fence_apc ip=10.0.0.3\n\
         connect pdu:1 node=node1 plug=1\n\
         connect pdu:2 node=node1 plug=1\n",
    )
    .unwrap();
    let out = hactor(&[
        "check-config",
        "--fence",
        fence.to_str().unwrap(),
        "--nodes",
        "node1,node2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        "[try] 0\n\
         [node1-cmd] fence_ipmilan --ip=10.0.0.1 --username=admin --password='se cret' --ipport=623\n\
         [node2-cmd] fence_ipmilan --ip=10.0.0.1 --username=admin --password='se cret' --ipport=624\n\
         [try] 1\n\
         [node1-cmd] fence_apc --ip=10.0.0.2 --plug=1\n\
         [node1-cmd] fence_apc --ip=10.0.0.3 --plug=1\n\
         [node2-cmd] none\n\
         [try] 2\n\
         [node1-cmd] none\n\
         [node2-cmd] none\n"
    );
    std::fs::write(&fence, "device a fence_x ip=1\ndevice a fence_x ip=2\n").unwrap();
    let out = hactor(&["check-config", "--fence", fence.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stdout),
        format!(
            "[FenceConfig] Encountered error(s) on parsing '{}':\nline 2: device 'a:1' already declared\n",
            fence.display()
        )
    );
}

/// Kills the daemon (and its process group's guard) when the test ends.
struct Daemon(std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn on_a_running_node_the_ha_configuration_is_checked_too() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "[proc.web]\ncommand = \"sleep\"\nargs = [\"1000\"]\n[resource.\"proc:web\"]\nstate = \"stopped\"\n",
    );
    let daemon = Daemon(
        Command::new(env!("CARGO_BIN_EXE_hactor"))
            .args(["--config", path.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let stdout = loop {
        let out = hactor(&["check-config", "--config", path.to_str().unwrap()]);
        let stdout = text(&out.stdout);
        if stdout.contains("1 resources") || Instant::now() > deadline {
            assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
            break stdout;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(stdout.contains("HA configuration (daemon at"), "{stdout}");
    assert!(stdout.contains("  1 resources\n  0 groups\n"), "{stdout}");
    assert!(stdout.contains("0 dropped"), "{stdout}");
    drop(daemon);
}
