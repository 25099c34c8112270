//! The state directory's lock and the daemon's pid file.
//!
//! Two daemons on one `state_dir` would both run: each would load the
//! store, accept edits and write it back, and one's edits would silently
//! overwrite the other's. So the daemon, and the lifecycle commands that
//! write the state directory (`cluster init`, `cluster join`), first take
//! an exclusive `flock` on `<state_dir>/lock` and hold it for their life;
//! a second one is refused with the path and the holder's pid. The kernel
//! drops the lock when its holder dies, however it dies (SIGKILL, a fence),
//! so a stale lock never blocks a restart. The file descriptor is
//! close-on-exec: the fence guard and the services never inherit it.
//!
//! The daemon also writes its own pid to `<state_dir>/hactor.pid` once it
//! holds the lock, and removes it when it exits (if it is still its own):
//! a daemon restarted by hand, by systemd or by `local-cluster` always has
//! the right pid there.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// The lock file inside the state directory.
pub const LOCK_FILE: &str = "lock";
/// The daemon's pid file inside the state directory.
pub const PID_FILE: &str = "hactor.pid";

/// An exclusive hold on a state directory; released on drop.
#[derive(Debug)]
pub struct StateDirLock {
    dir: PathBuf,
    lock: Option<Flock<File>>,
    /// The pid file this process wrote, removed on drop.
    pid_file: Option<PathBuf>,
}

impl StateDirLock {
    /// Creates `state_dir` if needed and locks it, without waiting: a
    /// directory another process holds is an error naming the directory
    /// and that process.
    pub fn acquire(state_dir: &Path) -> Result<StateDirLock, String> {
        std::fs::create_dir_all(state_dir)
            .map_err(|e| format!("state_dir {}: cannot create it: {e}", state_dir.display()))?;
        let path = state_dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("{}: cannot open the state directory's lock: {e}", path.display()))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => lock,
            Err((mut file, Errno::EWOULDBLOCK)) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = match holder.trim().parse::<u32>() {
                    Ok(pid) => format!(" (pid {pid})"),
                    Err(_) => String::new(),
                };
                return Err(format!(
                    "state_dir {} is in use by another hactor process{holder}: only one daemon or \
                     lifecycle command may use a state directory at a time (lock {})",
                    state_dir.display(),
                    path.display()
                ));
            }
            Err((_, errno)) => return Err(format!("{}: cannot lock: {errno}", path.display())),
        };
        // Who holds it, for the next one's error message.
        let _ = lock
            .set_len(0)
            .and_then(|_| lock.rewind())
            .and_then(|_| writeln!(*lock, "{}", std::process::id()));
        Ok(StateDirLock {
            dir: state_dir.to_path_buf(),
            lock: Some(lock),
            pid_file: None,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes this process's pid to `<state_dir>/hactor.pid` (atomically:
    /// a reader sees the old pid or the new one); it is removed on drop.
    pub fn write_pid_file(&mut self) -> Result<(), String> {
        let path = self.dir.join(PID_FILE);
        let tmp = self.dir.join(format!("{PID_FILE}.tmp"));
        std::fs::write(&tmp, format!("{}\n", std::process::id()))
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        self.pid_file = Some(path);
        Ok(())
    }
}

impl Drop for StateDirLock {
    fn drop(&mut self) {
        if let Some(path) = self.pid_file.take() {
            let ours = std::fs::read_to_string(&path)
                .is_ok_and(|text| text.trim().parse::<u32>().ok() == Some(std::process::id()));
            if ours {
                let _ = std::fs::remove_file(&path);
            }
        }
        if let Some(lock) = self.lock.take()
            && let Err((lock, _)) = lock.unlock()
        {
            // Closing the descriptor releases the lock anyway; a failed
            // explicit unlock must not panic (nix's Drop would).
            std::mem::forget(lock);
        }
    }
}

/// The pid in `<state_dir>/hactor.pid`, if any.
pub fn read_pid_file(state_dir: &Path) -> Option<i32> {
    std::fs::read_to_string(state_dir.join(PID_FILE))
        .ok()?
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_hold_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let mut first = StateDirLock::acquire(&state).unwrap();
        // flock locks belong to the open file: a second open in the same
        // process conflicts just as another process would.
        let err = StateDirLock::acquire(&state).unwrap_err();
        assert!(err.contains(&state.display().to_string()), "{err}");
        assert!(err.contains(&format!("(pid {})", std::process::id())), "{err}");
        first.write_pid_file().unwrap();
        assert_eq!(read_pid_file(&state), Some(std::process::id() as i32));
        drop(first);
        assert_eq!(read_pid_file(&state), None, "the pid file goes with its writer");
        let again = StateDirLock::acquire(&state).unwrap();
        drop(again);
    }

    #[test]
    fn a_pid_file_rewritten_by_another_daemon_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let mut lock = StateDirLock::acquire(dir.path()).unwrap();
        lock.write_pid_file().unwrap();
        std::fs::write(dir.path().join(PID_FILE), "4242\n").unwrap();
        drop(lock);
        assert_eq!(read_pid_file(dir.path()), Some(4242));
    }

    #[test]
    fn a_state_dir_that_is_a_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "").unwrap();
        let err = StateDirLock::acquire(&file).unwrap_err();
        assert!(err.contains(&file.display().to_string()), "{err}");
    }
}
