//! A minimal etcd v3 client for `petrel bench --against-etcd`: only `KV.Put`.
//!
//! It speaks etcd's native gRPC the way etcd's own benchmark tool does — HTTP/2, one
//! connection per endpoint, every writer's request a stream of its own on it — so etcd is
//! measured through its fast path, not through a gateway or a slower protocol. The gRPC
//! layer is written by hand over the `h2` crate and the protobuf messages are encoded by
//! hand (a `PutRequest` is two length-delimited fields) because the usual crates
//! (tonic, etcd-client) need `protoc` at build time.
//!
//! A write succeeds when etcd answers HTTP 200 with `grpc-status: 0` and a well-formed
//! `PutResponse`; anything else (a refused connection, a broken stream, a non-zero gRPC
//! status such as "no leader", the deadline) is a failed write. A connection that breaks is
//! dialled again by the next write on that endpoint.
use bytes::{BufMut, Bytes, BytesMut};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The gRPC method: service `etcdserverpb.KV`, rpc `Put`.
pub const PUT_PATH: &str = "/etcdserverpb.KV/Put";

/// A response body larger than this is not a `PutResponse` (which is a few dozen bytes):
/// stop reading instead of buffering whatever a wrong server sends.
const MAX_RESPONSE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("cannot connect to etcd at {endpoint}: {why}")]
    Connect { endpoint: String, why: String },
    #[error("HTTP/2 to etcd at {endpoint}: {source}")]
    Http2 {
        endpoint: String,
        #[source]
        source: h2::Error,
    },
    #[error("etcd at {endpoint} answered gRPC status {code}: {message}")]
    Status {
        endpoint: String,
        code: u32,
        message: String,
    },
    #[error("etcd at {endpoint} answered something that is not a gRPC PutResponse: {why}")]
    BadResponse { endpoint: String, why: String },
    #[error("no answer from etcd at {endpoint} within {deadline:?}")]
    Deadline {
        endpoint: String,
        deadline: Duration,
    },
}

/// A malformed protobuf message or gRPC frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the message ends inside a field")]
    Truncated,
    #[error("a varint longer than 10 bytes")]
    LongVarint,
    #[error("wire type {0} (groups or unknown) is not expected here")]
    WireType(u8),
    #[error("compressed gRPC messages are not expected (we asked for none)")]
    Compressed,
    #[error("{0} bytes after the gRPC message")]
    Trailing(usize),
    #[error("the response has no header with a revision")]
    NoRevision,
}

// ---- protobuf, by hand: only what PutRequest and PutResponse need ----

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `number` with wire type 2 (length-delimited).
fn put_bytes_field(out: &mut Vec<u8>, number: u32, bytes: &[u8]) {
    put_varint(out, (u64::from(number) << 3) | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// `PutRequest { key = 1, value = 2 }` (the other fields — lease, prev_kv, ignore_* —
/// keep their defaults, which protobuf encodes by leaving them out).
pub fn put_request(key: &[u8], value: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + value.len() + 8);
    put_bytes_field(&mut out, 1, key);
    put_bytes_field(&mut out, 2, value);
    out
}

fn varint(buf: &mut &[u8]) -> Result<u64, DecodeError> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or(DecodeError::Truncated)?;
        *buf = rest;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(DecodeError::LongVarint)
}

/// One field's value.
#[derive(Debug, PartialEq, Eq)]
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    /// Fixed 32- or 64-bit: skipped, nothing here needs them.
    Fixed,
}

/// The next `(field number, value)` of a message, `None` at its end.
fn next_field<'a>(buf: &mut &'a [u8]) -> Result<Option<(u64, Value<'a>)>, DecodeError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let tag = varint(buf)?;
    let take = |buf: &mut &'a [u8], n: usize| -> Result<&'a [u8], DecodeError> {
        if buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = buf.split_at(n);
        *buf = rest;
        Ok(head)
    };
    let value = match (tag & 7) as u8 {
        0 => Value::Varint(varint(buf)?),
        1 => {
            take(buf, 8)?;
            Value::Fixed
        }
        2 => {
            let n = usize::try_from(varint(buf)?).map_err(|_| DecodeError::Truncated)?;
            Value::Bytes(take(buf, n)?)
        }
        5 => {
            take(buf, 4)?;
            Value::Fixed
        }
        w => return Err(DecodeError::WireType(w)),
    };
    Ok(Some((tag >> 3, value)))
}

/// The store revision a `PutResponse { header = 1: ResponseHeader { revision = 3 } }`
/// reports: checking it is there tells an etcd apart from any other gRPC server that
/// answers the path with an empty message.
pub fn put_response_revision(mut msg: &[u8]) -> Result<i64, DecodeError> {
    let mut revision = None;
    while let Some((number, value)) = next_field(&mut msg)? {
        if let (1, Value::Bytes(mut header)) = (number, value) {
            while let Some((n, v)) = next_field(&mut header)? {
                if let (3, Value::Varint(r)) = (n, v) {
                    revision = Some(r as i64);
                }
            }
        }
    }
    revision.ok_or(DecodeError::NoRevision)
}

/// A `PutResponse` as etcd would encode it (for tests and the probe's expectations).
pub fn put_response(revision: i64) -> Vec<u8> {
    let mut header = Vec::new();
    put_varint(&mut header, 3 << 3);
    put_varint(&mut header, revision as u64);
    let mut out = Vec::new();
    put_bytes_field(&mut out, 1, &header);
    out
}

// ---- gRPC message framing: 1 byte "compressed", 4 bytes big-endian length, message ----

pub fn grpc_frame(msg: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + msg.len());
    out.put_u8(0);
    out.put_u32(msg.len() as u32);
    out.extend_from_slice(msg);
    out.freeze()
}

/// The one message of a unary response body.
pub fn grpc_unframe(body: &[u8]) -> Result<&[u8], DecodeError> {
    let (prefix, rest) = body.split_at_checked(5).ok_or(DecodeError::Truncated)?;
    if prefix[0] != 0 {
        return Err(DecodeError::Compressed);
    }
    let n = u32::from_be_bytes([prefix[1], prefix[2], prefix[3], prefix[4]]) as usize;
    let msg = rest.get(..n).ok_or(DecodeError::Truncated)?;
    match rest.len() - n {
        0 => Ok(msg),
        extra => Err(DecodeError::Trailing(extra)),
    }
}

// ---- endpoints ----

/// An etcd client URL: `http://host:port` (a trailing `/` is allowed, the scheme may be
/// left out).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// `host:port`, what is dialled and sent as `:authority`.
    pub authority: String,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "http://{}", self.authority)
    }
}

/// `http://127.0.0.1:2379,http://127.0.0.1:22379,…` → endpoints, or why not.
pub fn parse_endpoints(list: &str) -> anyhow::Result<Vec<Endpoint>> {
    let mut out = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = |why: &str| {
            anyhow::anyhow!(
                "--against-etcd: {raw:?} is not an etcd client URL ({why}); expected http://HOST:PORT, e.g. http://127.0.0.1:2379"
            )
        };
        if raw.starts_with("https://") {
            return Err(bad(
                "TLS is not supported by this bench client: give etcd an http:// client URL on loopback",
            ));
        }
        let rest = match raw.split_once("://") {
            Some(("http", rest)) => rest,
            Some((scheme, _)) => return Err(bad(&format!("scheme {scheme:?}"))),
            None => raw,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains('/') || authority.contains('@') {
            return Err(bad("a path or user name after the host"));
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        if host.is_empty() || host == "[]" {
            return Err(bad("no host"));
        }
        match port.parse::<u16>() {
            Ok(p) if p > 0 => {}
            _ => return Err(bad(&format!("port {port:?}"))),
        }
        // Loose IPv6 ("::1:2379") is ambiguous: require brackets.
        if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
            return Err(bad("an IPv6 host goes in brackets, e.g. http://[::1]:2379"));
        }
        out.push(Endpoint {
            authority: authority.to_string(),
        });
    }
    if out.is_empty() {
        anyhow::bail!("--against-etcd: no endpoint given (e.g. http://127.0.0.1:2379)");
    }
    Ok(out)
}

// ---- the client ----

/// One endpoint's HTTP/2 connection, dialled on first use and again after it breaks.
struct Conn {
    endpoint: Endpoint,
    uri: http::Uri,
    /// The live connection and its generation (so a broken one is cleared only if it is
    /// still the current one, not a newer connection another writer already dialled).
    live: tokio::sync::Mutex<Option<(u64, h2::client::SendRequest<Bytes>)>>,
    generation: AtomicU64,
}

impl Conn {
    async fn sender(self: &Arc<Self>) -> Result<(u64, h2::client::SendRequest<Bytes>), EtcdError> {
        let mut live = self.live.lock().await;
        if let Some((g, s)) = live.as_ref() {
            return Ok((*g, s.clone()));
        }
        let connect_err = |why: String| EtcdError::Connect {
            endpoint: self.endpoint.to_string(),
            why,
        };
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(self.endpoint.authority.as_str())
            .await
            .map_err(|e| connect_err(e.to_string()))?
            .collect();
        let mut last = "no address".to_string();
        let mut tcp = None;
        for a in addrs {
            match tokio::net::TcpStream::connect(a).await {
                Ok(s) => {
                    tcp = Some(s);
                    break;
                }
                Err(e) => last = format!("{a}: {e}"),
            }
        }
        let tcp = tcp.ok_or_else(|| connect_err(last))?;
        // gRPC clients disable Nagle: a request is one small write that must leave now.
        tcp.set_nodelay(true)
            .map_err(|e| connect_err(e.to_string()))?;
        let (send, connection) = h2::client::handshake(tcp)
            .await
            .map_err(|e| connect_err(format!("HTTP/2 handshake: {e}")))?;
        let g = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
        // The connection is driven by a task of its own; when it ends (etcd closed it, the
        // member died), forget it so that the next write dials again.
        let me = self.clone();
        tokio::spawn(async move {
            let _ = connection.await;
            let mut live = me.live.lock().await;
            if live.as_ref().is_some_and(|(lg, _)| *lg == g) {
                *live = None;
            }
        });
        *live = Some((g, send.clone()));
        Ok((g, send))
    }

    async fn forget(&self, g: u64) {
        let mut live = self.live.lock().await;
        if live.as_ref().is_some_and(|(lg, _)| *lg == g) {
            *live = None;
        }
    }

    async fn put(self: &Arc<Self>, key: &[u8], value: &[u8]) -> Result<i64, EtcdError> {
        let endpoint = || self.endpoint.to_string();
        let h2err = |source: h2::Error| EtcdError::Http2 {
            endpoint: endpoint(),
            source,
        };
        let bad = |why: String| EtcdError::BadResponse {
            endpoint: endpoint(),
            why,
        };
        let (g, sender) = self.sender().await?;
        let mut sender = match sender.ready().await {
            Ok(s) => s,
            Err(e) => {
                self.forget(g).await;
                return Err(h2err(e));
            }
        };
        let request = http::Request::builder()
            .method(http::Method::POST)
            .uri(self.uri.clone())
            .header(http::header::CONTENT_TYPE, "application/grpc")
            .header(http::header::TE, "trailers")
            .body(())
            .map_err(|e| bad(format!("cannot build the request: {e}")))?;
        let (response, mut body_out) = sender.send_request(request, false).map_err(h2err)?;
        body_out
            .send_data(grpc_frame(&put_request(key, value)), true)
            .map_err(h2err)?;
        let response = response.await.map_err(h2err)?;
        let (head, mut body) = response.into_parts();
        if head.status != http::StatusCode::OK {
            return Err(bad(format!("HTTP status {}", head.status)));
        }
        // A gRPC error is often "trailers-only": the status is in the headers, no body.
        let mut status = grpc_status(&head.headers);
        let mut buf = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(h2err)?;
            // Give the window back, or the connection stalls once 64 KiB were received.
            let _ = body.flow_control().release_capacity(chunk.len());
            if buf.len() + chunk.len() > MAX_RESPONSE {
                return Err(bad(format!("a body over {MAX_RESPONSE} bytes")));
            }
            buf.extend_from_slice(&chunk);
        }
        if let Some(trailers) = body.trailers().await.map_err(h2err)? {
            status = grpc_status(&trailers).or(status);
        }
        match status {
            None => Err(bad("no grpc-status".into())),
            Some((0, _)) => {
                let msg = grpc_unframe(&buf).map_err(|e| bad(e.to_string()))?;
                put_response_revision(msg).map_err(|e| bad(e.to_string()))
            }
            Some((code, message)) => Err(EtcdError::Status {
                endpoint: endpoint(),
                code,
                message,
            }),
        }
    }
}

/// `grpc-status` (and `grpc-message`) of a header block, if it has one.
fn grpc_status(headers: &http::HeaderMap) -> Option<(u32, String)> {
    let code = headers.get("grpc-status")?;
    // An unparsable status is an error status, not a success.
    let code = code.to_str().ok().and_then(|c| c.parse().ok()).unwrap_or(2);
    let message = headers
        .get("grpc-message")
        .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned())
        .unwrap_or_default();
    Some((code, message))
}

/// A client of an etcd cluster: one HTTP/2 connection per endpoint, shared by all writers
/// (each write is a stream of its own), like `etcd benchmark --conns=N --clients=M`.
pub struct Etcd {
    conns: Vec<Arc<Conn>>,
    deadline: Duration,
}

impl Etcd {
    /// Connect to every endpoint and write a probe key through each (`petrel-bench-probe`),
    /// so that a wrong address or a server that is not etcd is reported now, clearly,
    /// instead of as thousands of failed writes.
    pub async fn connect(endpoints: &[Endpoint], deadline: Duration) -> anyhow::Result<Etcd> {
        let mut conns = Vec::new();
        for e in endpoints {
            let uri: http::Uri = format!("http://{}{PUT_PATH}", e.authority)
                .parse()
                .map_err(|x| anyhow::anyhow!("--against-etcd: {e} is not a valid URL: {x}"))?;
            conns.push(Arc::new(Conn {
                endpoint: e.clone(),
                uri,
                live: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
            }));
        }
        let etcd = Etcd { conns, deadline };
        for (i, e) in endpoints.iter().enumerate() {
            etcd.put_via(i, b"petrel-bench-probe", b"probe")
                .await
                .map_err(|x| {
                    anyhow::anyhow!(
                        "--against-etcd: the probe write through {e} failed (is it an etcd client URL, and is etcd up?): {x}"
                    )
                })?;
        }
        Ok(etcd)
    }

    pub fn endpoints(&self) -> usize {
        self.conns.len()
    }

    /// Put through endpoint `i` (modulo their number), within the deadline.
    pub async fn put_via(&self, i: usize, key: &[u8], value: &[u8]) -> Result<i64, EtcdError> {
        let conn = &self.conns[i % self.conns.len()];
        match tokio::time::timeout(self.deadline, conn.put(key, value)).await {
            Ok(r) => r,
            Err(_) => Err(EtcdError::Deadline {
                endpoint: conn.endpoint.to_string(),
                deadline: self.deadline,
            }),
        }
    }
}

impl crate::bench::Target for Etcd {
    fn partition(&self, _key: &[u8]) -> u8 {
        0
    }

    /// Writers are spread over the endpoints round-robin; a writer whose write failed
    /// moves on to the next endpoint (as etcd's own client does when a member is down).
    async fn put(
        &self,
        writer: usize,
        failed: usize,
        key: &str,
        value: Vec<u8>,
    ) -> Result<(), String> {
        self.put_via(writer + failed, key.as_bytes(), &value)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_request_is_two_length_delimited_fields() {
        let msg = put_request(b"key", b"value");
        // tag 1/LEN = 0x0a, len 3, "key"; tag 2/LEN = 0x12, len 5, "value"
        assert_eq!(msg, b"\x0a\x03key\x12\x05value");
        // A 300-byte value has a two-byte length varint (0xac 0x02).
        let long = put_request(b"k", &[b'v'; 300]);
        assert_eq!(&long[..6], b"\x0a\x01k\x12\xac\x02");
        assert_eq!(long.len(), 6 + 300);
        let mut rest = long.as_slice();
        assert_eq!(
            next_field(&mut rest),
            Ok(Some((1, Value::Bytes(b"k".as_slice()))))
        );
        assert_eq!(
            next_field(&mut rest),
            Ok(Some((2, Value::Bytes([b'v'; 300].as_slice()))))
        );
        assert_eq!(next_field(&mut rest), Ok(None));
    }

    #[test]
    fn grpc_frames_round_trip_and_bad_ones_are_refused() {
        let msg = put_request(b"bench-key-000001", &[b'.'; 100]);
        let framed = grpc_frame(&msg);
        assert_eq!(framed[0], 0);
        assert_eq!(&framed[1..5], (msg.len() as u32).to_be_bytes().as_slice());
        assert_eq!(grpc_unframe(&framed), Ok(msg.as_slice()));
        assert_eq!(grpc_unframe(&framed[..4]), Err(DecodeError::Truncated));
        assert_eq!(
            grpc_unframe(&framed[..framed.len() - 1]),
            Err(DecodeError::Truncated)
        );
        let mut extra = framed.to_vec();
        extra.push(0);
        assert_eq!(grpc_unframe(&extra), Err(DecodeError::Trailing(1)));
        let mut compressed = framed.to_vec();
        compressed[0] = 1;
        assert_eq!(grpc_unframe(&compressed), Err(DecodeError::Compressed));
        assert_eq!(grpc_unframe(&grpc_frame(&[])), Ok([].as_slice()));
    }

    #[test]
    fn put_response_revision_is_read_past_other_fields() {
        assert_eq!(put_response_revision(&put_response(1)), Ok(1));
        assert_eq!(put_response_revision(&put_response(1 << 40)), Ok(1 << 40));
        // A header as etcd sends it: cluster_id, member_id, revision, raft_term.
        let mut header = Vec::new();
        for (field, v) in [(1u64, u64::MAX), (2, 0x1234_5678_9abc), (3, 4242), (4, 7)] {
            put_varint(&mut header, field << 3);
            put_varint(&mut header, v);
        }
        let mut msg = Vec::new();
        put_bytes_field(&mut msg, 1, &header);
        // An unknown fixed64 field after it (prev_kv absent) is skipped.
        msg.push((9 << 3) | 1);
        msg.extend_from_slice(&[0; 8]);
        assert_eq!(put_response_revision(&msg), Ok(4242));
        assert_eq!(put_response_revision(&[]), Err(DecodeError::NoRevision));
        assert_eq!(
            put_response_revision(&msg[..msg.len() - 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            put_response_revision(&[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ]),
            Err(DecodeError::LongVarint)
        );
        assert_eq!(
            put_response_revision(&[0x0b]),
            Err(DecodeError::WireType(3))
        );
        // A length that runs past the end.
        assert_eq!(
            put_response_revision(&[0x0a, 0x05, 0x18]),
            Err(DecodeError::Truncated)
        );
    }

    #[test]
    fn endpoints_parse_or_say_why_not() {
        let e = parse_endpoints("http://127.0.0.1:2379, 127.0.0.1:22379/,http://[::1]:2379")
            .unwrap_or_default();
        let got: Vec<&str> = e.iter().map(|e| e.authority.as_str()).collect();
        assert_eq!(got, ["127.0.0.1:2379", "127.0.0.1:22379", "[::1]:2379"]);
        for bad in [
            "",
            ",",
            "https://127.0.0.1:2379",
            "grpc://127.0.0.1:2379",
            "http://127.0.0.1",
            "http://127.0.0.1:0",
            "http://127.0.0.1:99999",
            "http://127.0.0.1:2379/v3",
            "http://:2379",
            "http://::1:2379",
        ] {
            let err = parse_endpoints(bad).err().map(|e| e.to_string());
            assert!(
                err.as_deref().is_some_and(|e| e.contains("--against-etcd")),
                "{bad:?}: {err:?}"
            );
        }
    }
}
