//! One request to the daemon: connect, write the request line, read the
//! answer line (at most [`MAX_REPLY`] bytes: a reply may be much longer
//! than a request, see [`crate::api::protocol`]).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::api::protocol::{self, MAX_REPLY, Outcome, Request, Response};

/// Longest wait for an answer (an edit may wait for consensus).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `request`; `Err` is a one-line message for the user.
pub fn call(socket: &Path, request: &Request) -> Result<Response, String> {
    call_within(socket, request, TIMEOUT)
}

/// [`call`] with its own limit on each write and read.
pub fn call_within(socket: &Path, request: &Request, timeout: Duration) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => " (is hactor running?)",
            std::io::ErrorKind::PermissionDenied => " (root only)",
            _ => "",
        };
        format!("cannot connect to the HA daemon at {}: {e}{hint}", socket.display())
    })?;
    // A socket timeout surfaces as EAGAIN ("Resource temporarily
    // unavailable"): say what it means.
    let io = |e: std::io::Error| match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => format!(
            "the HA daemon at {} did not answer within {} s (timeout)",
            socket.display(),
            timeout.as_secs_f64()
        ),
        _ => format!("connection to the HA daemon failed: {e}"),
    };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    // The daemon may refuse the connection before reading the request.
    let written = stream.write_all(&protocol::encode(request));
    let limit = u64::try_from(MAX_REPLY).unwrap_or(u64::MAX) + 1;
    let mut reader = BufReader::with_capacity(1 << 16, stream).take(limit);
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).map_err(io)?;
    if line.is_empty() {
        return Err(match written {
            Err(e) => io(e),
            Ok(()) => "the HA daemon closed the connection without an answer".to_string(),
        });
    }
    match protocol::decode_response(&line)? {
        Outcome::Ok(response) => Ok(response),
        Outcome::Error(message) => Err(message),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::net::UnixListener;

    use super::*;

    /// Issue 11 §5: a server that accepts and never answers was reported
    /// as "Resource temporarily unavailable".
    #[test]
    fn a_silent_daemon_is_a_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("silent.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let holder = std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_millis(800));
            drop(stream);
        });
        let err = call_within(&path, &Request::GroupConfig, Duration::from_millis(200)).unwrap_err();
        assert_eq!(
            err,
            format!(
                "the HA daemon at {} did not answer within 0.2 s (timeout)",
                path.display()
            )
        );
        holder.join().unwrap();
    }
}
