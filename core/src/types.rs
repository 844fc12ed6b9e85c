//! Value types shared by every role.
use crate::map::Map;
use serde::{Deserialize, Serialize};
use stateright::actor::Id;
use std::fmt;
use std::sync::Arc;

/// A configuration version. Every committed configuration change increments it by one.
pub type Ballot = u32;
/// A position in a partition's mutation log (1-based; 0 = nothing).
pub type Decree = u32;
/// A key of a table. The model uses one or two short keys; the node any bytes.
pub type Key = Bytes;
/// A key's value.
pub type Value = Bytes;
/// A client's request number; with the client id it identifies a mutation for dedup. A
/// duplicated mutation's is its source decree (the source meta server is the "client").
pub type ReqId = u32;

/// Global partition id: table and partition index.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Gpid {
    pub table: u8,
    pub partition: u8,
}

/// One partition's replica configuration, as the meta server commits it.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PartitionConfig {
    pub gpid: Gpid,
    pub ballot: Ballot,
    pub primary: Option<Id>,
    /// Sorted, never contains the primary.
    pub secondaries: Vec<Id>,
    pub max_replica_count: u8,
    /// A follower table's source: the meta server of the cluster whose duplication created
    /// it. Only that cluster's nodes may write into it (`auth.rs`); `None`: not a follower.
    pub source: Option<Id>,
}

impl PartitionConfig {
    pub fn is_member(&self, id: Id) -> bool {
        self.primary == Some(id) || self.secondaries.contains(&id)
    }
    pub fn members(&self) -> impl Iterator<Item = Id> + '_ {
        self.primary
            .iter()
            .copied()
            .chain(self.secondaries.iter().copied())
    }
    pub fn member_count(&self) -> usize {
        self.secondaries.len() + usize::from(self.primary.is_some())
    }
    /// The configuration after one change: `ballot + 1`, with `f` applied.
    pub fn next(&self, f: impl FnOnce(&mut PartitionConfig)) -> PartitionConfig {
        let mut c = self.clone();
        c.ballot = c.ballot.saturating_add(1);
        f(&mut c);
        c.secondaries.sort();
        c.secondaries.dedup();
        if let Some(p) = c.primary {
            c.secondaries.retain(|s| *s != p);
        }
        c
    }
}

/// Bytes of a key or a value. Shared, so cloning a log entry (which the checker does for
/// every state it explores) never copies them. Text in human-readable formats (traces,
/// event logs): printable ASCII as is, any other byte as `\xNN`, a backslash as `\\`;
/// raw bytes in the wire codec.
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bytes(Arc<[u8]>);

impl Bytes {
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The escaped text form (see the type's documentation).
    pub fn to_text(&self) -> String {
        if let Ok(t) = std::str::from_utf8(&self.0) {
            if t.chars().all(|c| !c.is_control() && c != '\\') {
                return t.to_owned();
            }
        }
        let mut t = String::with_capacity(self.0.len());
        for &b in self.0.iter() {
            match b {
                b'\\' => t.push_str("\\\\"),
                0x20..=0x7e => t.push(b as char),
                _ => t.push_str(&format!("\\x{b:02x}")),
            }
        }
        t
    }
    /// Parse the escaped text form; `None` for a malformed escape.
    pub fn from_text(t: &str) -> Option<Bytes> {
        let mut out = Vec::with_capacity(t.len());
        let mut rest = t.as_bytes();
        while let Some((&b, tail)) = rest.split_first() {
            if b != b'\\' {
                out.push(b);
                rest = tail;
                continue;
            }
            match tail {
                [b'\\', more @ ..] => {
                    out.push(b'\\');
                    rest = more;
                }
                [b'x', h, l, more @ ..] => {
                    // Exactly two hex digits: from_str_radix alone would take "+1".
                    let digit = |c: u8| (c as char).to_digit(16);
                    out.push((digit(*h)? * 16 + digit(*l)?) as u8);
                    rest = more;
                }
                _ => return None,
            }
        }
        Some(Bytes::from(out))
    }
}

impl From<&[u8]> for Bytes {
    fn from(b: &[u8]) -> Bytes {
        Bytes(Arc::from(b))
    }
}
impl From<Vec<u8>> for Bytes {
    fn from(b: Vec<u8>) -> Bytes {
        Bytes(Arc::from(b))
    }
}
impl From<&str> for Bytes {
    fn from(s: &str) -> Bytes {
        Bytes::from(s.as_bytes())
    }
}

impl fmt::Debug for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_text())
    }
}
impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_text())
    }
}

impl Serialize for Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(&self.to_text())
        } else {
            s.serialize_bytes(&self.0)
        }
    }
}

impl<'de> Deserialize<'de> for Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Bytes;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("bytes, or text with \\xNN escapes")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Bytes, E> {
                Ok(Bytes::from(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Bytes, E> {
                Bytes::from_text(v).ok_or_else(|| E::custom(format!("malformed escape in {v:?}")))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Bytes, A::Error> {
                let mut out = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    out.push(b);
                }
                Ok(Bytes::from(out))
            }
        }
        if d.is_human_readable() {
            d.deserialize_str(Visit)
        } else {
            d.deserialize_bytes(Visit)
        }
    }
}

/// What a mutation does to the partition's key-value map.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Op {
    Put(Key, Value),
    Del(Key),
    /// Replace the whole map: a duplication checkpoint, applied on the follower as one
    /// mutation so that it is replicated, deduplicated and ordered like any other.
    Load(Map<Key, Value>),
}

impl Op {
    pub fn apply(&self, data: &mut Map<Key, Value>) {
        match self {
            Op::Put(k, v) => {
                data.insert(k.clone(), v.clone());
            }
            Op::Del(k) => {
                data.remove(k);
            }
            Op::Load(m) => *data = m.clone(),
        }
    }
    /// `Some(value)` when this mutation decides `key`'s value (`Some(None)`: absent).
    pub fn decides(&self, key: &Key) -> Option<Option<&Value>> {
        match self {
            Op::Put(k, v) if k == key => Some(Some(v)),
            Op::Del(k) if k == key => Some(None),
            Op::Load(m) => Some(m.get(key)),
            _ => None,
        }
    }
}

/// A mutation: who asked, which request, what it does. (client, req) is the dedup key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Mutation {
    pub client: Id,
    pub req: ReqId,
    pub op: Op,
}

/// A prepared log entry: the mutation and the ballot under which it was (re)prepared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Entry {
    pub ballot: Ballot,
    pub mutation: Mutation,
}

/// Errors are values: everything a peer, a disk or an operator can cause ends here.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The receiver is not the serving primary of that partition.
    NotPrimary,
    /// The receiver does not host that partition / the meta does not know it.
    UnknownPartition,
    /// The primary is still catching up (learning) and may not serve reads.
    Recovering,
    /// A configuration proposal was not based on the current ballot.
    InvalidVersion,
    /// The connection to the peer broke or could not be made.
    PeerDown,
    /// No answer before the request's deadline.
    Timeout,
}

/// What a client operation returned.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum OpResult {
    WriteOk,
    /// The key's value; `None`: the key is absent.
    ReadOk(Option<Value>),
    /// The client gave up after its retry budget (a definite error for the caller).
    Failed(ErrorCode),
}

/// A client operation on one key of its partition.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ClientOp {
    Put(Key, Value),
    Get(Key),
    Del(Key),
}

impl ClientOp {
    pub fn put(key: impl Into<Key>, value: impl Into<Value>) -> ClientOp {
        ClientOp::Put(key.into(), value.into())
    }
    pub fn get(key: impl Into<Key>) -> ClientOp {
        ClientOp::Get(key.into())
    }
    pub fn del(key: impl Into<Key>) -> ClientOp {
        ClientOp::Del(key.into())
    }
}

/// The collapsed prefix of a log, what garbage collection leaves of decrees 1..=`decree`:
/// the key-value map there, and each writer's last request (so a retry of a mutation
/// whose entry was collected is still recognised as done).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Snapshot {
    pub decree: Decree,
    pub data: Map<Key, Value>,
    pub last_req: Map<Id, ReqId>,
}

impl Snapshot {
    /// Fold the committed entry `d` into the collapsed prefix (garbage collection).
    pub fn fold(&mut self, d: Decree, e: &Entry) {
        self.decree = d;
        e.mutation.op.apply(&mut self.data);
        let last = self.last_req.get(&e.mutation.client).copied().unwrap_or(0);
        self.last_req
            .insert(e.mutation.client, last.max(e.mutation.req));
    }
}

/// The partition of `partitions` that holds `key`: FNV-1a (64-bit) of the key's bytes,
/// modulo the count. Fixed forever: data placement depends on it.
pub fn partition_of(key: &[u8], partitions: u8) -> u8 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u8::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}
