//! The single-node store's journal (`<state_dir>/store.journal`): the
//! batches of operations applied since the snapshot (`store.json`) was
//! written, so that a batch costs an append of its own size, not a
//! rewrite of the whole state.
//!
//! The file is a header, then records:
//!
//! - header: [`MAGIC`], the SHA-256 of the `store.json` bytes the journal
//!   extends (its *base*), and a crc32c of those 40 bytes. A journal only
//!   ever replays onto the snapshot it was started for.
//! - record: `[u32 length][u32 crc32c of the body][u32 crc32c of those 8
//!   header bytes][body: one batch of operations as JSON]` (big-endian,
//!   the framing of the Raft log), so a flipped bit anywhere, a length
//!   included, is noticed.
//!
//! Only a bad or incomplete record after which no valid record starts is
//! a torn tail (a crash in the middle of an append, which was never
//! acknowledged): it is dropped. A bad record with a valid one after it is
//! corruption, and the journal is refused with its path and the byte
//! offset, never truncated or misread.

use crate::core::store::Op;
use crate::net::record::{self, Flaw, be32};

/// First bytes of a journal of this format.
pub const MAGIC: &[u8; 8] = b"HACTJNL1";

/// Bytes of the header: magic, base digest, checksum.
pub const HEADER_LEN: usize = 8 + 32 + 4;

/// Largest record body: a batch is a round's writes or one API edit
/// (the API's request limit bounds an edit's size).
const MAX_RECORD: usize = 64 << 20;

/// The SHA-256 of a snapshot file's bytes: the identity a journal names
/// as its base.
pub fn digest(bytes: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The header of a journal extending the snapshot with `base` digest.
pub fn header(base: &[u8; 32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(base);
    out.extend_from_slice(&crc32c::crc32c(&out).to_be_bytes());
    out
}

/// Frames one batch as a record.
pub fn encode_record(ops: &[Op]) -> std::io::Result<Vec<u8>> {
    let body = serde_json::to_vec(ops).map_err(std::io::Error::other)?;
    if body.len() > MAX_RECORD {
        return Err(std::io::Error::other(format!(
            "a batch of {} bytes is larger than a journal record may be ({MAX_RECORD})",
            body.len()
        )));
    }
    record::frame(&body)
}

/// Why the bytes of a journal cannot be trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JournalError {
    #[error(
        "not a store journal of this version (no valid '{}' header)",
        String::from_utf8_lossy(MAGIC)
    )]
    Header,
    #[error("corrupt record at byte offset {offset}: {reason} (valid records follow it, so it is not a torn tail)")]
    Corrupt { offset: usize, reason: String },
    #[error("record at byte offset {offset} has a valid checksum but does not decode: {reason}")]
    Undecodable { offset: usize, reason: String },
}

/// What a journal holds.
#[derive(Debug, PartialEq)]
pub struct Replayed {
    /// The digest of the snapshot the journal extends.
    pub base: [u8; 32],
    /// The batches, in the order they were applied.
    pub batches: Vec<Vec<Op>>,
    /// Bytes of the header and the valid records; a torn tail starts here.
    pub valid_len: usize,
}

/// The record body at `offset` if its header and checksums hold (the
/// body is not decoded), with the offset after it.
fn checked_body(bytes: &[u8], offset: usize) -> Result<(&[u8], usize), Flaw> {
    record::checked_body(bytes, offset, MAX_RECORD)
}

/// Reads the header of a journal: its base digest.
pub fn base_of(bytes: &[u8]) -> Result<[u8; 32], JournalError> {
    if bytes.len() < HEADER_LEN
        || &bytes[..MAGIC.len()] != MAGIC
        || crc32c::crc32c(&bytes[..HEADER_LEN - 4]) != be32(bytes, HEADER_LEN - 4)
    {
        return Err(JournalError::Header);
    }
    let mut base = [0; 32];
    base.copy_from_slice(&bytes[MAGIC.len()..MAGIC.len() + 32]);
    Ok(base)
}

/// Replays the bytes of a journal. A bad record is a torn tail only if
/// no valid record starts anywhere after it.
pub fn replay(bytes: &[u8]) -> Result<Replayed, JournalError> {
    let base = base_of(bytes)?;
    let mut offset = HEADER_LEN;
    let mut batches = Vec::new();
    while offset < bytes.len() {
        match checked_body(bytes, offset) {
            Ok((body, next)) => {
                let ops: Vec<Op> = serde_json::from_slice(body).map_err(|e| JournalError::Undecodable {
                    offset,
                    reason: e.to_string(),
                })?;
                batches.push(ops);
                offset = next;
            }
            Err(bad) => {
                if (offset + 1..bytes.len()).any(|o| checked_body(bytes, o).is_ok()) {
                    let reason = bad.describe();
                    return Err(JournalError::Corrupt {
                        offset,
                        reason: reason.into(),
                    });
                }
                break;
            }
        }
    }
    Ok(Replayed {
        base,
        batches,
        valid_len: offset,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::record::RECORD_HEADER;

    fn batch(n: u64) -> Vec<Op> {
        vec![Op::Heartbeat {
            node: "node1".into(),
            now_ms: n,
        }]
    }

    fn journal(batches: &[Vec<Op>]) -> Vec<u8> {
        let mut bytes = header(&digest(b"{}"));
        for ops in batches {
            bytes.extend(encode_record(ops).unwrap());
        }
        bytes
    }

    #[test]
    fn records_round_trip() {
        let batches = vec![batch(1), batch(2), vec![]];
        let bytes = journal(&batches);
        let replayed = replay(&bytes).unwrap();
        assert_eq!(replayed.base, digest(b"{}"));
        assert_eq!(replayed.batches, batches);
        assert_eq!(replayed.valid_len, bytes.len());
    }

    #[test]
    fn a_torn_last_record_is_dropped_wherever_it_is_cut() {
        let whole = journal(&[batch(1), batch(2)]);
        let first_end = journal(&[batch(1)]).len();
        for cut in first_end..whole.len() {
            let replayed = replay(&whole[..cut]).unwrap();
            assert_eq!(replayed.batches, vec![batch(1)], "cut at {cut}");
            assert_eq!(replayed.valid_len, first_end);
        }
    }

    #[test]
    fn a_damaged_last_record_is_dropped_never_misread() {
        let whole = journal(&[batch(1), batch(2)]);
        let first_end = journal(&[batch(1)]).len();
        for at in first_end..whole.len() {
            let mut bytes = whole.clone();
            bytes[at] ^= 0x04;
            let replayed = replay(&bytes).unwrap();
            assert_eq!(replayed.batches, vec![batch(1)], "flip at {at}");
        }
    }

    #[test]
    fn a_damaged_record_before_a_valid_one_is_corruption() {
        let mut bytes = journal(&[batch(1), batch(2)]);
        bytes[HEADER_LEN + RECORD_HEADER + 2] ^= 0x01;
        assert_eq!(
            replay(&bytes),
            Err(JournalError::Corrupt {
                offset: HEADER_LEN,
                reason: "body checksum mismatch".into()
            })
        );
        let err = replay(&bytes).unwrap_err().to_string();
        assert!(
            err.contains("byte offset 44") && err.contains("not a torn tail"),
            "{err}"
        );
    }

    #[test]
    fn a_bad_header_is_refused() {
        let bytes = journal(&[batch(1)]);
        for at in [0, 8, 43] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert_eq!(replay(&bad), Err(JournalError::Header), "flip at {at}");
        }
        assert_eq!(replay(&bytes[..HEADER_LEN - 1]), Err(JournalError::Header));
        assert_eq!(replay(b""), Err(JournalError::Header));
    }

    #[test]
    fn a_checksummed_record_that_is_no_batch_is_refused() {
        let mut bytes = header(&digest(b""));
        let body = b"{\"not\":\"ops\"}";
        bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
        bytes.extend_from_slice(&crc32c::crc32c(body).to_be_bytes());
        let head = crc32c::crc32c(&bytes[HEADER_LEN..HEADER_LEN + 8]);
        bytes.extend_from_slice(&head.to_be_bytes());
        bytes.extend_from_slice(body);
        assert!(matches!(
            replay(&bytes),
            Err(JournalError::Undecodable { offset: HEADER_LEN, .. })
        ));
    }
}
