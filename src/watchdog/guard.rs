//! The fence guard: a small separate process (`hactor fence-guard`) that
//! fences the node when the daemon stops feeding it. No actix, no async:
//! a poll loop on a pipe.
//!
//! Protocol on its stdin, one message per line: `k` (keepalive), `t <pgid>`
//! (a service process group started), `u <pgid>` (it ended), `V` (magic
//! close: the next end-of-file is a clean exit). Any message refreshes the
//! deadline. When the deadline passes, or the pipe closes without `V`
//! (daemon crashed or was killed), the guard kills every tracked process
//! group, then the daemon, logs why, and exits.

use std::collections::BTreeSet;
use std::io::Write;
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill, killpg};
use nix::unistd::Pid;

use crate::agents::command::deadline_after;

/// Exit status of a guard that fenced the node.
pub const FENCED_EXIT: i32 = 3;

/// What the guard was started with.
#[derive(Debug, Clone)]
pub struct GuardOptions {
    /// Fence when no message arrived for this long.
    pub timeout: Duration,
    /// The daemon to kill after its services.
    pub daemon_pid: i32,
    /// Where to append a line about a fence (besides stderr).
    pub log: Option<PathBuf>,
}

fn note(options: &GuardOptions, message: &str) {
    let line = format!("hactor fence-guard[{}]: {message}\n", std::process::id());
    let _ = std::io::stderr().write_all(line.as_bytes());
    let file = options
        .log
        .as_ref()
        .and_then(|p| std::fs::OpenOptions::new().create(true).append(true).open(p).ok());
    if let Some(mut file) = file {
        let _ = file.write_all(line.as_bytes());
    }
}

fn fence(options: &GuardOptions, groups: &BTreeSet<i32>, why: &str) -> i32 {
    note(
        options,
        &format!(
            "fencing node: {why}; killing {} service process group(s) and the daemon",
            groups.len()
        ),
    );
    for group in groups {
        let _ = killpg(Pid::from_raw(*group), Signal::SIGKILL);
    }
    if options.daemon_pid > 0 {
        let _ = kill(Pid::from_raw(options.daemon_pid), Signal::SIGKILL);
    }
    FENCED_EXIT
}

/// Runs the guard on `input` until it exits; returns the exit status.
pub fn run(options: &GuardOptions, input: BorrowedFd<'_>) -> i32 {
    // A stop or restart of the service manager must not take the guard
    // down before the daemon has closed it cleanly.
    let mut blocked = SigSet::empty();
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP, Signal::SIGPIPE] {
        blocked.add(signal);
    }
    let _ = blocked.thread_block();
    let mut groups = BTreeSet::new();
    let mut disarming = false;
    let mut deadline = deadline_after(options.timeout);
    let mut pending = Vec::new();
    loop {
        let now = Instant::now();
        if now >= deadline {
            let why = format!("no keepalive from the daemon for {} ms", options.timeout.as_millis());
            return fence(options, &groups, &why);
        }
        let wait = u16::try_from((deadline - now).as_millis().min(u128::from(u16::MAX))).unwrap_or(u16::MAX);
        let mut fds = [PollFd::new(input, PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(wait)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return fence(options, &groups, &format!("cannot wait for the daemon: {e}")),
        }
        let mut buffer = [0u8; 4096];
        let read = match nix::unistd::read(input, &mut buffer) {
            Ok(n) => n,
            Err(nix::errno::Errno::EINTR | nix::errno::Errno::EAGAIN) => continue,
            Err(e) => return fence(options, &groups, &format!("cannot read from the daemon: {e}")),
        };
        if read == 0 {
            if disarming {
                note(options, "daemon disconnected cleanly, guard exits");
                return 0;
            }
            return fence(
                options,
                &groups,
                "daemon connection closed without magic close (daemon died?)",
            );
        }
        deadline = deadline_after(options.timeout);
        pending.extend_from_slice(&buffer[..read]);
        while let Some(end) = pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = pending.drain(..=end).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).to_string();
            let mut words = line.split_whitespace();
            match (words.next(), words.next().and_then(|w| w.parse::<i32>().ok())) {
                (Some("k"), _) => disarming = false,
                (Some("V"), _) => disarming = true,
                (Some("t"), Some(group)) if group > 1 => {
                    groups.insert(group);
                }
                (Some("u"), Some(group)) => {
                    groups.remove(&group);
                }
                _ => note(options, &format!("ignoring malformed message {line:?}")),
            }
        }
    }
}

/// Entry point of `hactor fence-guard`: guards on stdin.
pub fn main(options: GuardOptions) -> i32 {
    let stdin = std::io::stdin();
    run(&options, stdin.as_fd())
}
