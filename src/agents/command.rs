//! Running one external command for an agent (a `qm` call, an OCF
//! script action, a health check): in its own process group, with a
//! deadline, with bounded captured output.
//!
//! Agents run in the worker pool's blocking threads, never on an actix
//! arbiter, so waiting here stalls no timer. The deadline is hard: when it
//! passes, the whole process group is killed and the call returns
//! [`Outcome::TimedOut`]. Output is read without blocking and the call
//! does not wait for end-of-file: a daemon the command left behind may
//! keep the pipes open for ever.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read};
use std::os::fd::AsFd;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, fcntl};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// Bytes kept of each of stdout and stderr.
const OUTPUT_LIMIT: usize = 64 * 1024;

/// One command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// `argv[0]` (looked up in `PATH` unless it holds a `/`) and the rest.
    pub argv: Vec<String>,
    pub env: BTreeMap<String, String>,
    pub cwd: Option<std::path::PathBuf>,
    pub timeout: Duration,
}

impl Invocation {
    pub fn new(argv: Vec<String>, timeout: Duration) -> Invocation {
        Invocation {
            argv,
            env: BTreeMap::new(),
            cwd: None,
            timeout,
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Invocation {
        self.env.insert(key.to_string(), value.into());
        self
    }

    pub fn envs(mut self, vars: &BTreeMap<String, String>) -> Invocation {
        self.env.extend(vars.iter().map(|(k, v)| (k.clone(), v.clone())));
        self
    }

    pub fn cwd(mut self, dir: Option<&Path>) -> Invocation {
        self.cwd = dir.map(Path::to_path_buf);
        self
    }

    /// The command line, for messages.
    pub fn display(&self) -> String {
        self.argv.join(" ")
    }
}

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Exited(i32),
    Signalled(i32),
    /// Killed (with its process group) at the deadline.
    TimedOut,
}

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finished {
    pub outcome: Outcome,
    pub stdout: String,
    pub stderr: String,
}

impl Finished {
    pub fn success(&self) -> bool {
        self.outcome == Outcome::Exited(0)
    }

    /// Why it failed, in words, with the end of its stderr.
    pub fn describe(&self, invocation: &Invocation) -> String {
        let what = invocation.display();
        let how = match self.outcome {
            Outcome::Exited(code) => format!("'{what}' exited with {code}"),
            Outcome::Signalled(signal) => format!("'{what}' was killed by signal {signal}"),
            Outcome::TimedOut => format!("'{what}' timed out after {}s", invocation.timeout.as_secs_f32()),
        };
        match self.stderr.lines().rev().map(str::trim).find(|line| !line.is_empty()) {
            Some(line) => format!("{how}: {line}"),
            None => how,
        }
    }
}

/// Runs `invocation` to its end or its deadline. `Err` when it cannot be
/// started at all (no such program, not executable).
pub fn run(invocation: &Invocation) -> Result<Finished, String> {
    let Some((program, args)) = invocation.argv.split_first() else {
        return Err("empty command".into());
    };
    let mut command = Command::new(program);
    command
        .args(args)
        .envs(&invocation.env)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(dir) = &invocation.cwd {
        command.current_dir(dir);
    }
    std::os::unix::process::CommandExt::process_group(&mut command, 0);
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run '{}': {e}", invocation.display()))?;
    let deadline = deadline_after(invocation.timeout);
    let mut stdout = Capture::new(child.stdout.take());
    let mut stderr = Capture::new(child.stderr.take());
    let mut pause = Duration::from_millis(2);
    let outcome = loop {
        stdout.drain();
        stderr.drain();
        match child.try_wait() {
            Ok(Some(status)) => break exit_outcome(status),
            Ok(None) => {}
            Err(e) => {
                kill_group(&mut child);
                return Err(format!("waiting for '{}': {e}", invocation.display()));
            }
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            break Outcome::TimedOut;
        }
        std::thread::sleep(pause.min(deadline.saturating_duration_since(Instant::now())));
        pause = (pause * 2).min(Duration::from_millis(50));
    };
    stdout.drain();
    stderr.drain();
    Ok(Finished {
        outcome,
        stdout: stdout.text(),
        stderr: stderr.text(),
    })
}

fn exit_outcome(status: std::process::ExitStatus) -> Outcome {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => Outcome::Exited(code),
        (None, Some(signal)) => Outcome::Signalled(signal),
        (None, None) => Outcome::Exited(-1),
    }
}

/// Kills the command's whole group and reaps the leader.
fn kill_group(child: &mut Child) {
    let group = Pid::from_raw(i32::try_from(child.id()).unwrap_or(i32::MAX));
    let _ = killpg(group, Signal::SIGKILL);
    let _ = child.wait();
}

/// Non-blocking reader of one pipe, keeping at most [`OUTPUT_LIMIT`] bytes.
struct Capture<R> {
    pipe: Option<R>,
    bytes: Vec<u8>,
}

impl<R: Read + AsFd> Capture<R> {
    fn new(pipe: Option<R>) -> Capture<R> {
        let pipe = pipe.filter(|p| {
            let flags = fcntl(p.as_fd(), FcntlArg::F_GETFL).map(OFlag::from_bits_truncate);
            flags.is_ok_and(|flags| fcntl(p.as_fd(), FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).is_ok())
        });
        Capture {
            pipe,
            bytes: Vec::new(),
        }
    }

    /// Reads what is there now.
    fn drain(&mut self) {
        let Some(pipe) = &mut self.pipe else { return };
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => {
                    self.pipe = None;
                    return;
                }
                Ok(n) => {
                    let room = OUTPUT_LIMIT.saturating_sub(self.bytes.len());
                    self.bytes.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.pipe = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Replaces `{name}` in every argument by its value.
pub fn expand(template: &[String], vars: &[(&str, &str)]) -> Vec<String> {
    template
        .iter()
        .map(|arg| {
            vars.iter().fold(arg.clone(), |arg, (name, value)| {
                arg.replace(&format!("{{{name}}}"), value)
            })
        })
        .collect()
}

/// `now + timeout` without the panic of `Instant + Duration` on overflow:
/// a timeout too long to represent (configuration and `crm-command stop`
/// bound it, but an agent must not trust that) waits "forever", a
/// century, and failing even that, not at all.
pub fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(100 * 365 * 86_400)))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deadline_never_overflows() {
        let before = Instant::now();
        assert!(deadline_after(Duration::from_secs(u64::MAX)) > before + Duration::from_secs(86_400));
        assert!(deadline_after(Duration::from_secs(9_223_372_036_854_775_807)) > before);
        assert!(deadline_after(Duration::MAX) >= before);
        let soon = deadline_after(Duration::from_secs(5));
        assert!(soon > before && soon <= Instant::now() + Duration::from_secs(5));
    }

    fn sh(script: &str, timeout_secs: u64) -> Invocation {
        Invocation::new(
            vec!["sh".into(), "-c".into(), script.into()],
            Duration::from_secs(timeout_secs),
        )
    }

    #[test]
    fn captures_exit_code_and_output() {
        let done = run(&sh("echo out; echo err >&2; exit 3", 30)).unwrap();
        assert_eq!(done.outcome, Outcome::Exited(3));
        assert_eq!(done.stdout, "out\n");
        assert_eq!(done.stderr, "err\n");
        assert!(!done.success());
        assert_eq!(done.describe(&sh("x", 1)), "'sh -c x' exited with 3: err");
    }

    #[test]
    fn kills_the_group_at_the_deadline() {
        let started = Instant::now();
        let done = run(&sh("sleep 600 & sleep 600", 1)).unwrap();
        assert_eq!(done.outcome, Outcome::TimedOut);
        assert!(started.elapsed() < Duration::from_secs(60));
    }

    #[test]
    fn does_not_wait_for_a_daemon_holding_the_pipes() {
        // The background sleep keeps stdout open; the call must return as
        // soon as the shell itself exits.
        let started = Instant::now();
        let invocation = sh("sleep 600 & echo $! ; exit 0", 300);
        let done = run(&invocation).unwrap();
        assert!(done.success());
        assert!(started.elapsed() < Duration::from_secs(60));
        let pid: i32 = done.stdout.trim().parse().unwrap();
        let _ = nix::sys::signal::kill(Pid::from_raw(pid), Signal::SIGKILL);
    }

    #[test]
    fn passes_env_and_refuses_missing_programs() {
        let done = run(&sh("echo $HACTOR_SID", 30).env("HACTOR_SID", "vm:100")).unwrap();
        assert_eq!(done.stdout, "vm:100\n");
        let err = run(&Invocation::new(vec!["/nonexistent/qm".into()], Duration::from_secs(5))).unwrap_err();
        assert!(err.contains("cannot run '/nonexistent/qm'"), "{err}");
    }

    #[test]
    fn expands_placeholders() {
        let template: Vec<String> = ["qm", "migrate", "{id}", "{target}", "--x={id}"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(
            expand(&template, &[("id", "100"), ("target", "node2")]),
            ["qm", "migrate", "100", "node2", "--x=100"]
        );
    }
}
