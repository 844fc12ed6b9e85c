//! Who may send what, and how big a key or value may be: the one place the transport
//! decides per message. (Who may send what belongs to the core and SPEC.md's authorization
//! table; until the core checks senders itself it lives here, small, so it can move there
//! whole. The transport only *authenticates*: [`Kind`] comes from the verified
//! certificate, see `link.rs`.)
use petrel_core::Msg;

/// What the peer of a connection is, by its verified certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A meta or replica server of the address book.
    Node,
    /// `client.<cluster>.petrel`: reads and writes.
    Client,
    /// `operator.<cluster>.petrel`: what a client may do, and administer the cluster.
    Operator,
}

impl Kind {
    /// Clients and operators: processes outside the address book, which carry sessions.
    pub fn is_client_side(self) -> bool {
        matches!(self, Kind::Client | Kind::Operator)
    }
}

/// Why `kind` may not send `msg`, or `Ok`. `PeerDown` only the driver produces; the
/// operator's requests to the meta server only operator certificates may send (not a
/// client, not a node — a partner cluster's node included); a client may read, write and
/// ask for configurations.
pub fn allowed(kind: Kind, msg: &Msg) -> Result<(), String> {
    match (kind, msg) {
        (_, Msg::PeerDown { .. }) => Err("PeerDown is produced by the transport only".into()),
        (Kind::Operator, Msg::CreateTable { .. } | Msg::AddDup { .. } | Msg::ModifyDup { .. } | Msg::SetFailMode { .. }) => Ok(()),
        (_, Msg::CreateTable { .. } | Msg::AddDup { .. } | Msg::ModifyDup { .. } | Msg::SetFailMode { .. }) => Err(format!(
            "{} is an operator request: it needs an operator certificate (operator.<cluster>.petrel, `petrel admin --config admin.toml`)",
            msg.kind()
        )),
        (Kind::Node, _) => Ok(()),
        (_, Msg::QueryConfig { .. } | Msg::Write { .. } | Msg::Read { .. } | Msg::QueryCluster) => Ok(()),
        (_, _) => Err(format!("a client may not send {}", msg.kind())),
    }
}

/// The largest key and value a write may carry (`[limits]` in the config). Both sides
/// apply them: the client library refuses a write before sending it, and a node refuses
/// one a peer sends anyway. Well under the frame limit (16 MiB) so that a write, and a
/// prepare or ship batch of a few of them, still fits a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_key_bytes: usize,
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 4 << 10,
            max_value_bytes: 1 << 20,
        }
    }
}

/// A key or value over its limit.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the {what} is {len} bytes, over the limit of {max} bytes ([limits] max_{what}_bytes)")]
pub struct TooLarge {
    pub what: &'static str,
    pub len: usize,
    pub max: usize,
}

impl Limits {
    /// Whether a write of `key` (and `value`) is within the limits.
    pub fn check(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), TooLarge> {
        if key.len() > self.max_key_bytes {
            return Err(TooLarge {
                what: "key",
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        match value {
            Some(v) if v.len() > self.max_value_bytes => Err(TooLarge {
                what: "value",
                len: v.len(),
                max: self.max_value_bytes,
            }),
            _ => Ok(()),
        }
    }

    /// The limits applied to a message a peer sent (writes and reads carry a key).
    pub fn check_msg(&self, msg: &Msg) -> Result<(), TooLarge> {
        match msg {
            Msg::Write { key, value, .. } => {
                self.check(key.as_slice(), value.as_ref().map(|v| v.as_slice()))
            }
            Msg::Read { key, .. } => self.check(key.as_slice(), None),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::id_of;

    #[test]
    fn operator_requests_only_from_operators_and_client_requests_from_anyone() {
        let gpid = petrel_core::Gpid {
            table: 1,
            partition: 0,
        };
        let client_requests = [
            Msg::QueryConfig { gpid },
            Msg::Write {
                gpid,
                req: 1,
                key: "k".into(),
                value: Some("v".into()),
            },
            Msg::Read {
                gpid,
                req: 1,
                key: "k".into(),
            },
            Msg::QueryCluster,
        ];
        for m in &client_requests {
            for k in [Kind::Client, Kind::Operator, Kind::Node] {
                assert!(allowed(k, m).is_ok(), "{k:?} {m:?}");
            }
        }
        let operator_requests = [
            Msg::CreateTable {
                table: 2,
                partitions: 1,
                replica_count: 1,
            },
            Msg::AddDup {
                table: 1,
                remote_meta: id_of(100),
                remote_table: 1,
                remote_replica_count: 1,
                full: true,
            },
            Msg::ModifyDup {
                dupid: 1,
                status: petrel_core::dup::DupStatus::Pause,
            },
            Msg::SetFailMode {
                dupid: 1,
                mode: petrel_core::dup::FailMode::Skip,
            },
        ];
        for m in &operator_requests {
            assert!(allowed(Kind::Operator, m).is_ok(), "{m:?}");
            for k in [Kind::Client, Kind::Node] {
                let why = allowed(k, m).expect_err("refused");
                assert!(why.contains("operator certificate"), "{why}");
            }
        }
        for m in [
            Msg::Register { incarnation: 1 },
            Msg::QueryFollower { table: 1 },
            Msg::DupReport {
                gpid,
                dupid: 1,
                progress: petrel_core::DupProgress::Checkpoint(1),
            },
        ] {
            assert!(
                allowed(Kind::Client, &m).is_err()
                    && allowed(Kind::Operator, &m).is_err()
                    && allowed(Kind::Node, &m).is_ok(),
                "{m:?}"
            );
        }
        for k in [Kind::Client, Kind::Operator, Kind::Node] {
            assert!(allowed(k, &Msg::PeerDown { incarnation: 1 }).is_err());
        }
    }

    #[test]
    fn keys_and_values_over_the_limit_are_named() {
        let l = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
        };
        assert!(l.check(b"four", Some(b"eight!!!")).is_ok());
        let e = l.check(b"fives", None).expect_err("key");
        assert_eq!(
            e.to_string(),
            "the key is 5 bytes, over the limit of 4 bytes ([limits] max_key_bytes)"
        );
        let e = l.check(b"k", Some(b"nine bytes")).expect_err("value");
        assert_eq!((e.what, e.len, e.max), ("value", 10, 8));
        let gpid = petrel_core::Gpid {
            table: 1,
            partition: 0,
        };
        assert!(l
            .check_msg(&Msg::Write {
                gpid,
                req: 1,
                key: "k".into(),
                value: Some(vec![0u8; 9].into())
            })
            .is_err());
        assert!(l
            .check_msg(&Msg::Read {
                gpid,
                req: 1,
                key: vec![0u8; 5].into()
            })
            .is_err());
        assert!(l.check_msg(&Msg::QueryCluster).is_ok());
    }
}
