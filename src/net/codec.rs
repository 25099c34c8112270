//! Wire framing: `[u32 length][u16 protocol version][bincode body]`, all
//! big-endian, with a hard size limit. Decoding never panics: anything a
//! peer sends becomes a value or a [`CodecError`].

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Version of the wire protocol; peers of another version are refused.
/// 2: `LeaderCheck` answers carry the member's last log id.
pub const PROTOCOL_VERSION: u16 = 2;

/// Largest frame body accepted (a snapshot of a big cluster fits easily).
pub const MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

const HEADER_BYTES: usize = 6;

/// Why bytes are not a valid frame.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("frame too short ({0} bytes)")]
    Truncated(usize),
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME_BYTES} bytes")]
    TooLarge(usize),
    #[error("frame length {declared} does not match the {actual} bytes received")]
    LengthMismatch { declared: usize, actual: usize },
    #[error("peer speaks protocol version {0}, this node speaks {PROTOCOL_VERSION}")]
    Version(u16),
    #[error("malformed frame body: {0}")]
    Malformed(String),
}

fn config() -> bincode::config::Configuration<
    bincode::config::BigEndian,
    bincode::config::Varint,
    bincode::config::Limit<MAX_FRAME_BYTES>,
> {
    bincode::config::standard()
        .with_big_endian()
        .with_limit::<MAX_FRAME_BYTES>()
}

/// Encodes a value into one frame.
pub fn encode<T: Serialize>(value: &T) -> Result<Vec<u8>, CodecError> {
    let body = bincode::serde::encode_to_vec(value, config()).map_err(|e| CodecError::Malformed(e.to_string()))?;
    if body.len() + 2 > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(body.len() + 2));
    }
    let length = u32::try_from(body.len() + 2).map_err(|_| CodecError::TooLarge(body.len()))?;
    let mut frame = Vec::with_capacity(HEADER_BYTES + body.len());
    frame.extend_from_slice(&length.to_be_bytes());
    frame.extend_from_slice(&PROTOCOL_VERSION.to_be_bytes());
    frame.extend_from_slice(&body);
    Ok(frame)
}

/// The total frame size a header declares (to bound reads).
pub fn declared_len(header: &[u8]) -> Result<usize, CodecError> {
    if header.len() < 4 {
        return Err(CodecError::Truncated(header.len()));
    }
    let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if length > MAX_FRAME_BYTES {
        return Err(CodecError::TooLarge(length));
    }
    Ok(4 + length)
}

/// Decodes one complete frame.
pub fn decode<T: DeserializeOwned>(frame: &[u8]) -> Result<T, CodecError> {
    if frame.len() < HEADER_BYTES {
        return Err(CodecError::Truncated(frame.len()));
    }
    let total = declared_len(frame)?;
    if total != frame.len() {
        return Err(CodecError::LengthMismatch {
            declared: total,
            actual: frame.len(),
        });
    }
    let version = u16::from_be_bytes([frame[4], frame[5]]);
    if version != PROTOCOL_VERSION {
        return Err(CodecError::Version(version));
    }
    let (value, used) = bincode::serde::decode_from_slice(&frame[HEADER_BYTES..], config())
        .map_err(|e| CodecError::Malformed(e.to_string()))?;
    if used != frame.len() - HEADER_BYTES {
        return Err(CodecError::Malformed(format!(
            "{} trailing bytes",
            frame.len() - HEADER_BYTES - used
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Message {
        Ping(u64),
        Text { node: String, items: Vec<u32> },
    }

    #[test]
    fn round_trip() {
        for message in [
            Message::Ping(7),
            Message::Text {
                node: "node1".into(),
                items: vec![1, 2, 3],
            },
        ] {
            let frame = encode(&message).unwrap();
            assert_eq!(decode::<Message>(&frame).unwrap(), message);
        }
    }

    #[test]
    fn wrong_version_oversize_and_truncation_are_errors() {
        let mut frame = encode(&Message::Ping(1)).unwrap();
        frame[5] = 9;
        assert_eq!(decode::<Message>(&frame), Err(CodecError::Version(9)));
        assert!(matches!(
            declared_len(&[0xff, 0xff, 0xff, 0xff]),
            Err(CodecError::TooLarge(_))
        ));
        let frame = encode(&Message::Ping(1)).unwrap();
        assert!(decode::<Message>(&frame[..frame.len() - 1]).is_err());
        assert!(matches!(decode::<Message>(&frame[..3]), Err(CodecError::Truncated(3))));
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        // A seeded stream of random frames, some with valid headers.
        let mut seed = 0x9e3779b97f4a7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let len = (next() % 64) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if len >= HEADER_BYTES && next() % 2 == 0 {
                let body = (len - 4) as u32;
                bytes[..4].copy_from_slice(&body.to_be_bytes());
                bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
            }
            let _ = decode::<Message>(&bytes);
            let _ = declared_len(&bytes);
        }
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        fn arb_message() -> impl Strategy<Value = Message> {
            prop_oneof![
                any::<u64>().prop_map(Message::Ping),
                (".{0,24}", proptest::collection::vec(any::<u32>(), 0..8))
                    .prop_map(|(node, items)| Message::Text { node, items }),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn frames_round_trip(message in arb_message()) {
                let frame = encode(&message).unwrap();
                prop_assert_eq!(declared_len(&frame).unwrap(), frame.len());
                prop_assert_eq!(decode::<Message>(&frame).unwrap(), message);
            }

            /// A mutated frame is an error with a message, or a value
            /// whose own encoding decodes back to it.
            #[test]
            fn mutated_frames_are_errors_or_consistent_values(
                message in arb_message(),
                flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 0..4),
                cut in proptest::option::of(any::<prop::sample::Index>()),
                extra in proptest::collection::vec(any::<u8>(), 0..4),
            ) {
                let mut bytes = encode(&message).unwrap();
                for (at, x) in &flips {
                    let i = at.index(bytes.len());
                    bytes[i] ^= x;
                }
                if let Some(cut) = cut {
                    bytes.truncate(cut.index(bytes.len()));
                }
                bytes.extend_from_slice(&extra);
                match decode::<Message>(&bytes) {
                    Ok(value) => {
                        let again = encode(&value).unwrap();
                        prop_assert_eq!(decode::<Message>(&again).unwrap(), value);
                    }
                    Err(e) => prop_assert!(!e.to_string().is_empty()),
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96), header: bool) {
                let mut bytes = bytes;
                if header && bytes.len() >= HEADER_BYTES {
                    let body = (bytes.len() - 4) as u32;
                    bytes[..4].copy_from_slice(&body.to_be_bytes());
                    bytes[4..6].copy_from_slice(&PROTOCOL_VERSION.to_be_bytes());
                }
                let _ = declared_len(&bytes);
                if let Ok(value) = decode::<Message>(&bytes) {
                    prop_assert_eq!(decode::<Message>(&encode(&value).unwrap()).unwrap(), value);
                }
            }
        }
    }
}
