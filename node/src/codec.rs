//! The wire format: length-delimited, versioned postcard frames.
//!
//! ```text
//! [u32 BE length][u8 version][postcard payload]      length = 1 + payload bytes
//! ```
//!
//! Why this shape: QUIC streams are byte streams, so frames need a delimiter; a fixed-size
//! big-endian length lets a reader reject an oversized frame *before* allocating for it; the
//! version byte lets a later node refuse (rather than misread) a frame of another format.
//! postcard is compact and maintained (bincode 3 is a tombstone, 2.x unmaintained), and it
//! encodes whatever serde types the core uses, so a change of `Value` or `ReqId` in the
//! core needs no change here.
//!
//! Decoding never panics: every failure is a [`DecodeError`] the transport logs before
//! closing the stream's connection.
use petrel_core::Msg;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt};

/// The frame format this node speaks. 2: the key-value messages (`Write`/`Read` carry a
/// key, values are bytes); a node of format 1 (one register per partition) is refused
/// with `BadVersion` instead of being misread.
pub const VERSION: u8 = 2;
/// The largest frame (version byte + payload) a node accepts or sends. A `Learn` carries a
/// primary's whole log, so this is generous; anything larger is treated as hostile.
pub const MAX_FRAME: usize = 16 << 20;

/// What travels on a stream. The first frame of every stream is a `Hello`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// Who the sender claims to be; the receiver checks it against the peer's certificate.
    /// `incarnation` is the life of the sender (named again in `PeerDown` when it dies).
    Hello {
        cluster: String,
        id: u64,
        incarnation: u32,
    },
    /// A protocol message for the receiving actor.
    Msg(Msg),
    /// Client to node: `msg` comes from the client session `session` (an id in the client
    /// range), not from the connection's own id. One client connection carries many
    /// sessions: the client library runs one core client actor per call, and each needs
    /// an id of its own (replicas deduplicate writes by client id and request number).
    From { session: u64, msg: Msg },
    /// Node to client: `msg` is for session `session` of this connection.
    To { session: u64, msg: Msg },
    /// Client to node: session `session` is over; its route is forgotten.
    End { session: u64 },
}

/// Why bytes could not be turned into a [`Frame`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("frame version {0} is not supported (this node speaks version {VERSION})")]
    BadVersion(u8),
    #[error("malformed frame: {0}")]
    Malformed(String),
}

/// Why a frame could not be read from a stream.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("stream ended in the middle of a frame")]
    Truncated,
    #[error("stream read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Why a frame could not be encoded.
#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    Oversized { len: usize, max: usize },
    #[error("cannot encode frame: {0}")]
    Serialize(String),
}

/// Encode one frame, header included.
pub fn encode(frame: &Frame) -> Result<Vec<u8>, EncodeError> {
    // Reserve the header, then let postcard append the payload after it.
    let mut buf = vec![0u8, 0, 0, 0, VERSION];
    buf = postcard::to_extend(frame, buf).map_err(|e| EncodeError::Serialize(e.to_string()))?;
    let len = buf.len() - 4;
    if len > MAX_FRAME {
        return Err(EncodeError::Oversized {
            len,
            max: MAX_FRAME,
        });
    }
    let len32 = u32::try_from(len).map_err(|_| EncodeError::Oversized {
        len,
        max: MAX_FRAME,
    })?;
    buf[..4].copy_from_slice(&len32.to_be_bytes());
    Ok(buf)
}

/// Decode a frame body (version byte + payload), i.e. what follows the length field.
pub fn decode_body(body: &[u8]) -> Result<Frame, DecodeError> {
    let Some((&version, payload)) = body.split_first() else {
        return Err(DecodeError::Malformed("empty frame".into()));
    };
    if version != VERSION {
        return Err(DecodeError::BadVersion(version));
    }
    let (frame, rest) = postcard::take_from_bytes::<Frame>(payload)
        .map_err(|e| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::Malformed(format!(
            "{} trailing bytes after the frame",
            rest.len()
        )));
    }
    Ok(frame)
}

/// Check a length field before anything is allocated for the body.
fn check_len(len: u32, max: usize) -> Result<usize, DecodeError> {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    if len > max {
        return Err(DecodeError::Oversized { len, max });
    }
    if len == 0 {
        return Err(DecodeError::Malformed("empty frame".into()));
    }
    Ok(len)
}

/// Decode the first frame of `buf`. `Ok(None)`: not enough bytes yet. `Ok(Some((frame,
/// used)))`: a frame and how many bytes of `buf` it took.
pub fn decode(buf: &[u8], max: usize) -> Result<Option<(Frame, usize)>, DecodeError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let mut len_bytes = [0u8; 4];
    len_bytes.copy_from_slice(header);
    let len = check_len(u32::from_be_bytes(len_bytes), max)?;
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    Ok(Some((decode_body(body)?, 4 + len)))
}

/// Read one frame from a stream. `Ok(None)`: the stream ended cleanly between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Option<Frame>, ReadError> {
    let mut header = [0u8; 4];
    // The first byte tells a clean end (no byte at all) from a truncated header.
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut header[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
        got += n;
    }
    let len = check_len(u32::from_be_bytes(header), max)?;
    let mut body = vec![0u8; len];
    match r.read_exact(&mut body).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(ReadError::Truncated)
        }
        Err(e) => return Err(ReadError::Io(e)),
    }
    Ok(Some(decode_body(&body)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use petrel_core::{Bytes, ErrorCode, Gpid, Op, PartitionConfig};
    use proptest::prelude::*;
    use stateright::actor::Id;

    fn id() -> impl Strategy<Value = Id> {
        prop_oneof![
            (0usize..8).prop_map(Id::from),
            any::<usize>().prop_map(Id::from)
        ]
    }

    fn gpid() -> impl Strategy<Value = Gpid> {
        (any::<u8>(), any::<u8>()).prop_map(|(table, partition)| Gpid { table, partition })
    }

    fn config() -> impl Strategy<Value = PartitionConfig> {
        (
            gpid(),
            any::<u32>(),
            proptest::option::of(id()),
            proptest::collection::vec(id(), 0..4),
            any::<u8>(),
            proptest::option::of(id()),
        )
            .prop_map(
                |(gpid, ballot, primary, secondaries, max_replica_count, source)| PartitionConfig {
                    gpid,
                    ballot,
                    primary,
                    secondaries,
                    max_replica_count,
                    source,
                },
            )
    }

    /// Keys and values: empty, short text, and any bytes (escapes only matter in text
    /// formats; the wire carries them raw).
    fn bytes() -> impl Strategy<Value = Bytes> {
        prop_oneof![
            Just(Bytes::default()),
            "[a-z0-9]{1,8}".prop_map(|s| Bytes::from(s.as_str())),
            proptest::collection::vec(any::<u8>(), 0..64).prop_map(Bytes::from),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (bytes(), bytes()).prop_map(|(k, v)| Op::Put(k, v)),
            bytes().prop_map(Op::Del),
            proptest::collection::btree_map(bytes(), bytes(), 0..4)
                .prop_map(|m| Op::Load(m.into())),
        ]
    }

    fn error_code() -> impl Strategy<Value = ErrorCode> {
        prop_oneof![
            Just(ErrorCode::NotPrimary),
            Just(ErrorCode::UnknownPartition),
            Just(ErrorCode::Recovering),
            Just(ErrorCode::PeerDown),
            Just(ErrorCode::Timeout),
        ]
    }

    /// Several variants of every shape: options, results, vectors, nested structs. (Only
    /// variants that are stable in the core; the codec itself is generic over `Msg`.)
    fn msg() -> impl Strategy<Value = Msg> {
        prop_oneof![
            gpid().prop_map(|gpid| Msg::QueryConfig { gpid }),
            (
                gpid(),
                proptest::option::of(config()),
                proptest::option::of(any::<u32>())
            )
                .prop_map(|(gpid, config, incarnation)| Msg::QueryConfigReply {
                    gpid,
                    config,
                    incarnation
                }),
            (
                gpid(),
                any::<petrel_core::ReqId>(),
                bytes(),
                proptest::option::of(bytes())
            )
                .prop_map(|(gpid, req, key, value)| Msg::Write {
                    gpid,
                    req,
                    key,
                    value
                }),
            (gpid(), any::<petrel_core::ReqId>(), bytes()).prop_map(|(gpid, req, key)| Msg::Read {
                gpid,
                req,
                key
            }),
            (
                gpid(),
                any::<petrel_core::ReqId>(),
                proptest::result::maybe_ok(proptest::option::of(bytes()), error_code())
            )
                .prop_map(|(gpid, req, result)| Msg::ReadReply { gpid, req, result }),
            (
                gpid(),
                id(),
                any::<u32>(),
                proptest::collection::btree_map(bytes(), bytes(), 0..6)
            )
                .prop_map(|(gpid, origin, decree, data)| Msg::Checkpoint {
                    gpid,
                    origin,
                    decree,
                    data: data.into()
                }),
            (
                gpid(),
                id(),
                proptest::collection::vec((any::<u32>(), op()), 0..6)
            )
                .prop_map(|(gpid, origin, entries)| Msg::Ship {
                    gpid,
                    origin,
                    entries
                }),
            any::<u32>().prop_map(|incarnation| Msg::Register { incarnation }),
            (gpid(), any::<u32>(), any::<u32>(), any::<bool>()).prop_map(
                |(gpid, ballot, decree, ok)| Msg::PrepareAck {
                    gpid,
                    ballot,
                    decree,
                    ok
                }
            ),
            (config(), any::<u32>()).prop_map(|(config, incarnation)| Msg::ConfigUpdate {
                config,
                incarnation
            }),
            (any::<u8>(), proptest::collection::vec(config(), 0..4))
                .prop_map(|(table, configs)| Msg::QueryFollowerReply { table, configs }),
            (gpid(), any::<u32>(), any::<u32>()).prop_map(|(gpid, ballot, learned)| {
                Msg::LearnDone {
                    gpid,
                    ballot,
                    learned,
                }
            }),
            any::<u32>().prop_map(|incarnation| Msg::PeerDown { incarnation }),
        ]
    }

    fn frame() -> impl Strategy<Value = Frame> {
        prop_oneof![
            (".{0,30}", any::<u64>(), any::<u32>()).prop_map(|(cluster, id, incarnation)| {
                Frame::Hello {
                    cluster,
                    id,
                    incarnation,
                }
            }),
            msg().prop_map(Frame::Msg),
            (any::<u64>(), msg()).prop_map(|(session, msg)| Frame::From { session, msg }),
            (any::<u64>(), msg()).prop_map(|(session, msg)| Frame::To { session, msg }),
            any::<u64>().prop_map(|session| Frame::End { session }),
        ]
    }

    proptest! {
        #[test]
        fn round_trip(f in frame()) {
            let bytes = encode(&f).expect("encodes");
            let (back, used) = decode(&bytes, MAX_FRAME).expect("decodes").expect("complete");
            prop_assert_eq!(used, bytes.len());
            prop_assert_eq!(back, f);
        }

        /// Any prefix of a frame is "incomplete", never an error or a wrong frame.
        #[test]
        fn prefixes_are_incomplete(f in frame(), cut in 0usize..64) {
            let bytes = encode(&f).expect("encodes");
            let cut = cut.min(bytes.len() - 1);
            prop_assert_eq!(decode(&bytes[..cut], MAX_FRAME), Ok(None));
        }

        /// Garbage never panics; it decodes to an error, "incomplete", or some frame.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, MAX_FRAME);
            let _ = decode_body(&bytes);
        }

        /// Flipping a payload byte yields an error or a (different) frame, never a panic.
        #[test]
        fn corrupt_payload_never_panics(f in frame(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let mut bytes = encode(&f).expect("encodes");
            let i = 5 + pos.index(bytes.len() - 5).min(bytes.len() - 6);
            if i < bytes.len() {
                bytes[i] ^= 1 << bit;
            }
            let _ = decode(&bytes, MAX_FRAME);
        }
    }

    #[test]
    fn typed_errors() {
        // A length beyond the limit is refused from the header alone.
        let mut big = (MAX_FRAME as u32 + 1).to_be_bytes().to_vec();
        big.push(VERSION);
        assert!(matches!(
            decode(&big, MAX_FRAME),
            Err(DecodeError::Oversized { .. })
        ));
        assert!(matches!(
            decode(&u32::MAX.to_be_bytes(), MAX_FRAME),
            Err(DecodeError::Oversized { .. })
        ));
        // Wrong version.
        let mut f = encode(&Frame::Msg(Msg::Register { incarnation: 3 })).expect("encodes");
        f[4] = 99;
        assert_eq!(decode(&f, MAX_FRAME), Err(DecodeError::BadVersion(99)));
        // Empty body, unknown enum tag, trailing bytes.
        assert!(matches!(
            decode(&[0, 0, 0, 0], MAX_FRAME),
            Err(DecodeError::Malformed(_))
        ));
        assert!(matches!(
            decode(&[0, 0, 0, 2, VERSION, 77], MAX_FRAME),
            Err(DecodeError::Malformed(_))
        ));
        let mut f = encode(&Frame::Msg(Msg::Register { incarnation: 3 })).expect("encodes");
        f.push(0);
        let len = (f.len() - 4) as u32;
        f[..4].copy_from_slice(&len.to_be_bytes());
        assert!(matches!(
            decode(&f, MAX_FRAME),
            Err(DecodeError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn stream_reader() {
        let a = Frame::Hello {
            cluster: "alpha".into(),
            id: 3,
            incarnation: 2,
        };
        let b = Frame::Msg(Msg::PeerDown { incarnation: 7 });
        let mut bytes = encode(&a).expect("encodes");
        bytes.extend(encode(&b).expect("encodes"));
        let mut r = &bytes[..];
        assert_eq!(read_frame(&mut r, MAX_FRAME).await.expect("a"), Some(a));
        assert_eq!(read_frame(&mut r, MAX_FRAME).await.expect("b"), Some(b));
        assert_eq!(read_frame(&mut r, MAX_FRAME).await.expect("end"), None);
        // Truncated in the header and in the body.
        let mut r = &bytes[..2];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Truncated)
        ));
        let mut r = &bytes[..7];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Truncated)
        ));
        // Oversized is refused without reading the body.
        let huge = (u32::MAX).to_be_bytes();
        let mut r = &huge[..];
        assert!(matches!(
            read_frame(&mut r, MAX_FRAME).await,
            Err(ReadError::Decode(DecodeError::Oversized { .. }))
        ));
    }
}
