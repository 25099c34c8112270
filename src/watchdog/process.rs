//! The `process` backend: starts the fence guard (`hactor fence-guard`)
//! as a separate process in its own process group and feeds it over a
//! pipe.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::Duration;

use super::Backend;

/// A running fence guard.
pub struct GuardProcess {
    child: Child,
    input: Option<ChildStdin>,
}

impl GuardProcess {
    /// Starts `program fence-guard` guarding this process; with
    /// `kill_daemon` false the guard kills only the service groups (tests
    /// that host a node inside the test process).
    pub fn spawn(
        program: &Path,
        timeout: Duration,
        log: Option<PathBuf>,
        kill_daemon: bool,
    ) -> std::io::Result<GuardProcess> {
        let daemon_pid = if kill_daemon { std::process::id() } else { 0 };
        let mut command = Command::new(program);
        command
            .arg("fence-guard")
            .arg("--timeout-ms")
            .arg(timeout.as_millis().to_string())
            .arg("--daemon-pid")
            .arg(daemon_pid.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::null());
        if let Some(log) = log {
            command.arg("--log").arg(log);
        }
        // Its own process group: signals to the daemon's group do not
        // reach it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let mut child = command.spawn().map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot start fence guard {}: {e}", program.display()))
        })?;
        let input = child.stdin.take();
        Ok(GuardProcess { child, input })
    }

    fn send(&mut self, message: &str) -> std::io::Result<()> {
        let Some(input) = self.input.as_mut() else {
            return Err(std::io::Error::other("fence guard already closed"));
        };
        input.write_all(message.as_bytes()).and_then(|()| input.flush())
    }

    /// The guard's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Backend for GuardProcess {
    fn keepalive(&mut self) -> std::io::Result<()> {
        self.send("k\n")
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        self.send("V\n")?;
        self.input = None;
        self.child.wait()?;
        Ok(())
    }

    fn track(&mut self, pgid: i32) {
        let _ = self.send(&format!("t {pgid}\n"));
    }

    fn untrack(&mut self, pgid: i32) {
        let _ = self.send(&format!("u {pgid}\n"));
    }
}
