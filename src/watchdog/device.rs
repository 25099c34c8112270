//! The kernel watchdog device (`/dev/watchdog`) through its ioctls.
//!
//! Opening the device arms it; closing without the magic `V` leaves it
//! armed (the machine resets after the timeout). Only [`Device::disarm`]
//! writes the `V`; dropping the device deliberately does not, so a crash
//! means fencing. Never opened by the test suite.

#![allow(unsafe_code)]

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::Path;

use super::Backend;

nix::ioctl_read!(wdioc_keepalive, b'W', 5, libc::c_int);
nix::ioctl_readwrite!(wdioc_settimeout, b'W', 6, libc::c_int);

/// An open, armed watchdog device.
pub struct Device {
    file: Option<File>,
}

impl Device {
    /// Opens and arms the device with a timeout in whole seconds (at least 1).
    pub fn open(path: &Path, timeout_secs: u64) -> std::io::Result<Device> {
        let file = OpenOptions::new().write(true).open(path).map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot open watchdog device {}: {e}", path.display()))
        })?;
        let mut timeout = libc::c_int::try_from(timeout_secs.max(1)).unwrap_or(libc::c_int::MAX);
        // SAFETY: the fd is an open watchdog device for the whole call and
        // `timeout` is a valid, writable c_int, as WDIOC_SETTIMEOUT needs.
        unsafe { wdioc_settimeout(file.as_raw_fd(), &mut timeout) }
            .map_err(|e| std::io::Error::other(format!("{}: cannot set timeout: {e}", path.display())))?;
        Ok(Device { file: Some(file) })
    }
}

impl Backend for Device {
    fn keepalive(&mut self) -> std::io::Result<()> {
        let Some(file) = &self.file else { return Ok(()) };
        let mut unused: libc::c_int = 0;
        // SAFETY: the fd is open; the kernel ignores the argument, which is a
        // valid c_int anyway.
        unsafe { wdioc_keepalive(file.as_raw_fd(), &mut unused) }.map_err(std::io::Error::other)?;
        Ok(())
    }

    fn disarm(&mut self) -> std::io::Result<()> {
        if let Some(mut file) = self.file.take() {
            file.write_all(b"V")?;
        }
        Ok(())
    }
}
