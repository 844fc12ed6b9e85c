//! The reference object for linearizability (SAFE-7): a sequential key-value map, the
//! behaviour a client of one partition is promised.
use petrel_core::{ClientOp, Key, OpResult, Value};
use serde::Serialize;
use stateright::semantics::SequentialSpec;
use std::collections::BTreeMap;

#[derive(Clone, Debug, Default, Hash, PartialEq, Serialize)]
pub struct Kv(pub BTreeMap<Key, Value>);

#[derive(Clone, Debug, Hash, PartialEq, Serialize)]
pub enum KvRet {
    WriteOk,
    ReadOk(Option<Value>),
}

impl KvRet {
    /// What a client's result says about the map; `None` for a definite failure (it may
    /// or may not have taken effect, so it constrains nothing).
    pub fn of(r: &OpResult) -> Option<KvRet> {
        match r {
            OpResult::WriteOk => Some(KvRet::WriteOk),
            OpResult::ReadOk(v) => Some(KvRet::ReadOk(v.clone())),
            OpResult::Failed(_) => None,
        }
    }
}

impl SequentialSpec for Kv {
    type Op = ClientOp;
    type Ret = KvRet;
    fn invoke(&mut self, op: &ClientOp) -> KvRet {
        match op {
            ClientOp::Put(k, v) => {
                self.0.insert(k.clone(), v.clone());
                KvRet::WriteOk
            }
            ClientOp::Del(k) => {
                self.0.remove(k);
                KvRet::WriteOk
            }
            ClientOp::Get(k) => KvRet::ReadOk(self.0.get(k).cloned()),
        }
    }
    fn is_valid_step(&mut self, op: &ClientOp, ret: &KvRet) -> bool {
        match (op, ret) {
            (ClientOp::Get(k), KvRet::ReadOk(v)) => self.0.get(k) == v.as_ref(),
            (ClientOp::Get(_), _) | (_, KvRet::ReadOk(_)) => false,
            _ => {
                self.invoke(op);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_map_per_key() {
        let mut kv = Kv::default();
        assert!(kv.is_valid_step(&ClientOp::put("a", "1"), &KvRet::WriteOk));
        assert!(kv.is_valid_step(&ClientOp::get("b"), &KvRet::ReadOk(None)));
        assert!(kv.is_valid_step(&ClientOp::get("a"), &KvRet::ReadOk(Some("1".into()))));
        assert!(!kv.is_valid_step(&ClientOp::get("a"), &KvRet::ReadOk(None)));
        assert!(kv.is_valid_step(&ClientOp::del("a"), &KvRet::WriteOk));
        assert!(kv.is_valid_step(&ClientOp::get("a"), &KvRet::ReadOk(None)));
        assert!(!kv.is_valid_step(&ClientOp::put("a", "2"), &KvRet::ReadOk(None)));
    }
}
