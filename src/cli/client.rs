//! One request to the daemon: connect, write the request line, read the
//! answer line (at most [`MAX_FRAME`] bytes).

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::api::protocol::{self, MAX_FRAME, Outcome, Request, Response};

/// Longest wait for an answer (an edit may wait for consensus).
const TIMEOUT: Duration = Duration::from_secs(60);

/// Sends `request`; `Err` is a one-line message for the user.
pub fn call(socket: &Path, request: &Request) -> Result<Response, String> {
    let mut stream = UnixStream::connect(socket).map_err(|e| {
        let hint = match e.kind() {
            std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => " (is hactor running?)",
            std::io::ErrorKind::PermissionDenied => " (root only)",
            _ => "",
        };
        format!("cannot connect to the HA daemon at {}: {e}{hint}", socket.display())
    })?;
    let io = |e: std::io::Error| format!("connection to the HA daemon failed: {e}");
    stream.set_read_timeout(Some(TIMEOUT)).map_err(io)?;
    stream.set_write_timeout(Some(TIMEOUT)).map_err(io)?;
    // The daemon may refuse the connection before reading the request.
    let written = stream.write_all(&protocol::encode(request));
    let limit = u64::try_from(MAX_FRAME).unwrap_or(u64::MAX) + 1;
    let mut reader = BufReader::new(stream).take(limit);
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
