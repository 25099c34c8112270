//! Checksummed records for append-only files (the Raft log, the single
//! node's store journal): `[u32 length][u32 crc32c of the body][u32 crc32c
//! of those 8 bytes][body]`, big-endian. The header checksum tells a torn
//! or damaged length from a real one, so a reader never trusts a length it
//! cannot verify.

/// Bytes before a record's body.
pub const RECORD_HEADER: usize = 12;

/// Why the bytes at an offset are not a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// The bytes end before the header or the body does (a torn tail if
    /// nothing valid follows).
    Incomplete,
    /// The header's checksum fails, or its length is over the limit.
    Header,
    /// The body's checksum fails.
    Body,
}

impl Flaw {
    /// What is wrong, for an error message.
    pub fn describe(self) -> &'static str {
        match self {
            Flaw::Incomplete => "its length runs past the end of the file",
            Flaw::Header => "header checksum mismatch",
            Flaw::Body => "body checksum mismatch",
        }
    }
}

/// Frames `body` as one record.
pub fn frame(body: &[u8]) -> std::io::Result<Vec<u8>> {
    let len = u32::try_from(body.len()).map_err(std::io::Error::other)?;
    let mut out = Vec::with_capacity(RECORD_HEADER + body.len());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
    let head_crc = crc32c::crc32c(&out[..8]);
    out.extend_from_slice(&head_crc.to_be_bytes());
    out.extend_from_slice(body);
    Ok(out)
}

/// A big-endian u32 at `at`.
pub fn be32(bytes: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// The record body at `offset` if its header and checksums hold and its
/// length is at most `max_body`, with the offset after it.
pub fn checked_body(bytes: &[u8], offset: usize, max_body: usize) -> Result<(&[u8], usize), Flaw> {
    let rest = &bytes[offset..];
    if rest.len() < RECORD_HEADER {
        return Err(Flaw::Incomplete);
    }
    if crc32c::crc32c(&rest[..8]) != be32(rest, 8) {
        return Err(Flaw::Header);
    }
    let len = be32(rest, 0) as usize;
    if len > max_body {
        return Err(Flaw::Header);
    }
    if rest.len() < RECORD_HEADER + len {
        return Err(Flaw::Incomplete);
    }
    let body = &rest[RECORD_HEADER..RECORD_HEADER + len];
    if crc32c::crc32c(body) != be32(rest, 4) {
        return Err(Flaw::Body);
    }
    Ok((body, offset + RECORD_HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_framed_body_reads_back_and_every_flaw_is_named() {
        let mut bytes = frame(b"hello").unwrap();
        assert_eq!(checked_body(&bytes, 0, 64), Ok((&b"hello"[..], RECORD_HEADER + 5)));
        assert_eq!(checked_body(&bytes, 0, 4), Err(Flaw::Header), "over the limit");
        assert_eq!(checked_body(&bytes[..RECORD_HEADER + 2], 0, 64), Err(Flaw::Incomplete));
        bytes[RECORD_HEADER] ^= 1;
        assert_eq!(checked_body(&bytes, 0, 64), Err(Flaw::Body));
        bytes[1] ^= 1;
        assert_eq!(checked_body(&bytes, 0, 64), Err(Flaw::Header));
    }
}
