//! The key-value data model: per-key reads, deletes (replicated, deduplicated), garbage
//! collection of puts and deletes into the snapshot's map, a follower partition's
//! checkpoint (`Load`, which replaces the map) and shipped puts and deletes, the client's
//! key operations, the text form of `Bytes`, and the placement function `partition_of`.
//! Replicas run in a small lossless FIFO network (`Net`) with every step of every replica
//! checked by `DurableReplica`.
mod common;

use common::*;
use petrel_core::client::ClientCfg;
use petrel_core::replica::{Part, ReplicaCfg};
use petrel_core::*;
use proptest::prelude::*;
use stateright::actor::Out;
use std::collections::{BTreeMap, VecDeque};

const META: usize = 0;
/// The primary of the partition under test.
const P: usize = 1;
/// Its secondary.
const S: usize = 2;
/// A replica that joins as a learner.
const L: usize = 3;
/// Clients.
const C: usize = 10;
const D: usize = 11;
/// Whoever sends the reads of `Net::read`.
const READER: usize = 20;
/// The source cluster of a duplication: its meta server (the origin of checkpoints and
/// shipped mutations) and the source primary that sends them.
const SRC_META: usize = 30;
const SRC: usize = 31;
/// A follower partition.
const F: Gpid = Gpid {
    table: 2,
    partition: 0,
};

fn b(s: &str) -> Bytes {
    Bytes::from(s)
}

fn map(pairs: &[(&str, &str)]) -> Map<Key, Value> {
    pairs.iter().map(|(k, v)| (b(k), b(v))).collect()
}

fn put_w(gpid: Gpid, req: ReqId, key: &str, value: &str) -> Msg {
    Msg::Write {
        gpid,
        req,
        key: b(key),
        value: Some(b(value)),
    }
}

fn del_w(gpid: Gpid, req: ReqId, key: &str) -> Msg {
    Msg::Write {
        gpid,
        req,
        key: b(key),
        value: None,
    }
}

fn ok_reply(gpid: Gpid, req: ReqId) -> Msg {
    Msg::WriteReply {
        gpid,
        req,
        result: Ok(()),
    }
}

/// Replicas that talk to each other over a lossless FIFO network; what they send anyone
/// else is kept in `outside`.
struct Net {
    nodes: BTreeMap<usize, (Sim, DurableReplica)>,
    flight: VecDeque<(usize, usize, Msg)>,
    outside: Vec<(usize, usize, Msg)>,
    next_read: ReqId,
}

impl Net {
    fn new(cfg: &ReplicaCfg, ids: &[usize]) -> Net {
        let mut net = Net {
            nodes: BTreeMap::new(),
            flight: VecDeque::new(),
            outside: Vec::new(),
            next_read: 0,
        };
        for &n in ids {
            let (sim, o) = Sim::start(Node::Replica(cfg.clone()), id(n), None);
            let mut durable = DurableReplica::default();
            durable.check(&o).unwrap();
            net.nodes.insert(n, (sim, durable));
            net.route(n, &o);
        }
        net
    }

    /// `P`, primary of `G`, with secondary `S` (ballot 1, bootstrapped); `gc`: both collect.
    fn pair(gc: bool) -> Net {
        let mut cfg = replica_cfg(vec![pc(1, Some(P), &[S])], Bugs::none());
        cfg.gc = gc;
        Net::new(&cfg, &[P, S])
    }

    fn route(&mut self, from: usize, o: &Out<Node>) {
        for (to, m) in sends(o) {
            let to = usize::from(to);
            if self.nodes.contains_key(&to) {
                self.flight.push_back((from, to, m));
            } else {
                self.outside.push((from, to, m));
            }
        }
    }

    /// Node `to` takes `m` from `from` now; what it sends is queued.
    fn send(&mut self, from: usize, to: usize, m: Msg) -> Out<Node> {
        let (sim, durable) = self.nodes.get_mut(&to).expect("a node of the net");
        let o = sim.msg(id(from), m);
        durable
            .check(&o)
            .unwrap_or_else(|e| panic!("replica {to}: {e}"));
        assert_eq!(sim.replica().broken, None, "replica {to} broke");
        self.route(to, &o);
        o
    }

    /// Deliver the oldest message in flight, if any.
    fn deliver_one(&mut self) -> bool {
        let Some((from, to, m)) = self.flight.pop_front() else {
            return false;
        };
        self.send(from, to, m);
        true
    }

    /// Deliver until nothing is in flight.
    fn settle(&mut self) {
        for _ in 0..10_000 {
            if !self.deliver_one() {
                return;
            }
        }
        panic!("still talking after 10000 deliveries: {:?}", self.flight);
    }

    fn part(&self, n: usize, gpid: Gpid) -> &Part {
        &self.nodes[&n].0.replica().parts[&gpid]
    }

    /// Read `key` of `gpid` at node `to`, which must answer at once.
    fn read(&mut self, to: usize, gpid: Gpid, key: &str) -> Result<Option<Value>, ErrorCode> {
        self.next_read += 1;
        let req = self.next_read;
        let o = self.send(
            READER,
            to,
            Msg::Read {
                gpid,
                req,
                key: b(key),
            },
        );
        let replies: Vec<_> = sends(&o)
            .into_iter()
            .filter_map(|(dst, m)| match m {
                Msg::ReadReply {
                    gpid: g,
                    req: r,
                    result,
                } if dst == id(READER) && g == gpid && r == req => Some(result),
                _ => None,
            })
            .collect();
        assert_eq!(
            replies.len(),
            1,
            "read of {key:?} at {to} not answered once: {o:?}"
        );
        replies.into_iter().next().unwrap()
    }

    /// What reached `to` (outside the net) so far and was not taken yet.
    fn take_outside(&mut self, to: usize) -> Vec<Msg> {
        let (mine, rest) = std::mem::take(&mut self.outside)
            .into_iter()
            .partition(|(_, dst, _)| *dst == to);
        self.outside = rest;
        mine.into_iter().map(|(_, _, m)| m).collect()
    }
}

// =======================================================================================
// Reads per key
// =======================================================================================

/// put a=1, put b=2, del a: once committed, a reads absent and b reads 2 on the primary;
/// before the delete commits, a still reads 1 (reads see the commit point, not the log);
/// a key never written reads `Ok(None)`, on a fresh primary too.
#[test]
fn reads_are_per_key_after_commit() {
    let mut net = Net::pair(false);
    assert_eq!(
        net.read(P, G, "a"),
        Ok(None),
        "a fresh partition holds nothing"
    );
    assert_eq!(
        net.read(P, G, ""),
        Ok(None),
        "the empty key is a key like any other"
    );
    net.send(C, P, put_w(G, 1, "a", "1"));
    net.send(C, P, put_w(G, 2, "b", "2"));
    assert_eq!(net.part(P, G).committed, 0);
    assert_eq!(net.read(P, G, "a"), Ok(None), "an uncommitted put was read");
    net.settle();
    assert_eq!(net.part(P, G).committed, 2);
    assert_eq!(net.read(P, G, "a"), Ok(Some(b("1"))));
    assert_eq!(net.read(P, G, "b"), Ok(Some(b("2"))));

    net.send(C, P, del_w(G, 3, "a"));
    assert_eq!(
        (net.part(P, G).committed, net.part(P, G).last_decree()),
        (2, 3)
    );
    assert_eq!(
        net.read(P, G, "a"),
        Ok(Some(b("1"))),
        "an uncommitted delete was read"
    );
    net.settle();
    assert_eq!(net.part(P, G).committed, 3);
    assert_eq!(net.read(P, G, "a"), Ok(None));
    assert_eq!(net.read(P, G, "b"), Ok(Some(b("2"))));
    assert_eq!(net.read(P, G, "never-written"), Ok(None));
    assert_eq!(
        net.read(P, G, "A"),
        Ok(None),
        "keys are bytes: no case folding"
    );
    assert_eq!(net.part(P, G).data_at(3), map(&[("b", "2")]));
    assert_eq!(net.part(P, G).data_at(2), map(&[("a", "1"), ("b", "2")]));
    // Each write was answered once, after its commit.
    assert_eq!(
        net.take_outside(C),
        vec![ok_reply(G, 1), ok_reply(G, 2), ok_reply(G, 3)]
    );
    // Only the primary serves reads.
    assert_eq!(net.read(S, G, "b"), Err(ErrorCode::NotPrimary));
    assert_eq!(
        net.read(
            P,
            Gpid {
                table: 9,
                partition: 0
            },
            "b"
        ),
        Err(ErrorCode::UnknownPartition)
    );
}

/// A new primary holds reads until it has committed what it inherited; each waiting read
/// is then answered with its own key's value.
#[test]
fn reads_held_behind_the_barrier_are_answered_per_key() {
    let (mut sim, o) = Sim::start(
        Node::Replica(replica_cfg(vec![pc(1, Some(S), &[P, L])], Bugs::none())),
        id(P),
        None,
    );
    let mut durable = DurableReplica::default();
    durable.check(&o).unwrap();
    let old = pc(1, Some(S), &[P, L]);
    let ops = [put(1), Op::Put(b("b"), b("2")), Op::Del(k())];
    for (i, op) in ops.into_iter().enumerate() {
        let d = i as Decree + 1;
        let entry = Entry {
            ballot: 1,
            mutation: mutation_op(C, d, op),
        };
        let o = sim.msg(
            id(S),
            Msg::Prepare {
                config: old.clone(),
                decree: d,
                entry,
                committed: 0,
                base: 0,
                retain: 0,
            },
        );
        durable.check(&o).unwrap();
    }
    // S died: P is promoted with L; it inherited decrees 1..=3, none known committed.
    let o = sim.msg(
        id(META),
        Msg::ConfigUpdate {
            config: pc(2, Some(P), &[L]),
            incarnation: 1,
        },
    );
    durable.check(&o).unwrap();
    assert_eq!(sim.replica().parts[&G].read_barrier, 3);
    let keys = [K, "b", "zz"];
    for (req, key) in keys.iter().enumerate() {
        let o = sim.msg(
            id(READER),
            Msg::Read {
                gpid: G,
                req: req as ReqId,
                key: b(key),
            },
        );
        assert!(
            sends(&o).is_empty(),
            "a read answered before the barrier: {o:?}"
        );
    }
    for d in 1..=2 {
        let o = sim.msg(
            id(L),
            Msg::PrepareAck {
                gpid: G,
                ballot: 2,
                decree: d,
                ok: true,
            },
        );
        durable.check(&o).unwrap();
        assert!(
            sends_to(&o, id(READER)).is_empty(),
            "a read answered before the barrier: {o:?}"
        );
    }
    let o = sim.msg(
        id(L),
        Msg::PrepareAck {
            gpid: G,
            ballot: 2,
            decree: 3,
            ok: true,
        },
    );
    durable.check(&o).unwrap();
    let mut replies = sends_to(&o, id(READER));
    replies.sort();
    let expected = vec![
        Msg::ReadReply {
            gpid: G,
            req: 0,
            result: Ok(None),
        },
        Msg::ReadReply {
            gpid: G,
            req: 1,
            result: Ok(Some(b("2"))),
        },
        Msg::ReadReply {
            gpid: G,
            req: 2,
            result: Ok(None),
        },
    ];
    assert_eq!(replies, expected);
    assert!(sim.replica().parts[&G].pending_reads.is_empty());
}

// =======================================================================================
// Deletes: replicated, deduplicated
// =======================================================================================

/// A delete is a mutation like a put: the prepare carries it, the secondary logs it (or,
/// collecting, folds it into its snapshot once it hears the commit point), and a retry of
/// it (same client, same request) before or after its commit is applied once: it never
/// deletes a value written after it.
#[test]
fn a_delete_is_replicated_and_applied_once() {
    for gc in [false, true] {
        let mut net = Net::pair(gc);
        net.send(C, P, put_w(G, 1, "a", "1"));
        net.send(C, P, put_w(G, 2, "b", "2"));
        net.settle();
        let o = net.send(C, P, del_w(G, 3, "a"));
        let prepares: Vec<(Decree, Entry)> = sends_to(&o, id(S))
            .into_iter()
            .filter_map(|m| match m {
                Msg::Prepare { decree, entry, .. } => Some((decree, entry)),
                _ => None,
            })
            .collect();
        let del = Entry {
            ballot: 1,
            mutation: mutation_op(C, 3, Op::Del(b("a"))),
        };
        assert_eq!(prepares, vec![(3, del.clone())], "gc {gc}");
        // A retry before the commit: no second decree, no prepare, no answer yet.
        let o = net.send(C, P, del_w(G, 3, "a"));
        assert!(sends(&o).is_empty(), "gc {gc}: {o:?}");
        assert_eq!(net.part(P, G).last_decree(), 3);
        net.settle();
        assert_eq!(
            net.take_outside(C),
            vec![ok_reply(G, 1), ok_reply(G, 2), ok_reply(G, 3)],
            "gc {gc}: one answer per write"
        );
        let s = net.part(S, G);
        assert_eq!(s.last_decree(), 3);
        if gc {
            // The secondary has not heard that 3 committed: it is still in its log.
            assert_eq!(s.snapshot.decree, 2);
        }
        assert_eq!(s.log.get(&3), Some(&del), "gc {gc}");
        assert_eq!(s.data_at(3), map(&[("b", "2")]));

        // Another client writes a again; the next prepare carries the commit point 3.
        net.send(D, P, put_w(G, 1, "a", "9"));
        net.settle();
        let s = net.part(S, G);
        assert_eq!(s.committed, 3);
        if gc {
            assert_eq!(s.snapshot.decree, 3);
            assert_eq!(
                s.snapshot.data,
                map(&[("b", "2")]),
                "the collected delete left a behind"
            );
            assert_eq!(s.snapshot.last_req.get(&id(C)), Some(&3));
        } else {
            assert_eq!(s.log.get(&3), Some(&del));
        }
        assert_eq!(s.data_at(s.last_decree()), map(&[("a", "9"), ("b", "2")]));
        assert_eq!(net.read(P, G, "a"), Ok(Some(b("9"))));

        // A late retry of the delete is answered as done and changes nothing.
        let before = net.part(P, G).clone();
        if gc {
            assert!(
                before.log.is_empty(),
                "the primary collected everything committed"
            );
        }
        let o = net.send(C, P, del_w(G, 3, "a"));
        assert_eq!(sends(&o), vec![(id(C), ok_reply(G, 3))], "gc {gc}");
        assert_eq!(
            net.part(P, G),
            &before,
            "gc {gc}: a retried delete was applied again"
        );
        assert_eq!(
            net.read(P, G, "a"),
            Ok(Some(b("9"))),
            "gc {gc}: the retried delete removed a newer value"
        );
    }
}

// =======================================================================================
// Garbage collection of the map
// =======================================================================================

/// With `gc`, committed puts and deletes are folded into `snapshot.data` (a deleted key is
/// absent, not kept as a tombstone) and reads after the collection still see the right
/// values; a learner receives that map and ends with the primary's state.
#[test]
fn gc_folds_puts_and_deletes_into_the_snapshot() {
    let mut cfg = replica_cfg(vec![pc(1, Some(P), &[S])], Bugs::none());
    cfg.gc = true;
    let mut net = Net::new(&cfg, &[P, S, L]);
    let writes = [
        put_w(G, 1, "a", "1"),
        put_w(G, 2, "b", "2"),
        del_w(G, 3, "a"),
        put_w(G, 4, "c", "3"),
        put_w(G, 5, "b", "4"),
        del_w(G, 6, "c"),
        del_w(G, 7, "never-written"),
    ];
    for w in writes {
        net.send(C, P, w);
        net.settle();
    }
    let p = net.part(P, G).clone();
    assert_eq!(p.committed, 7);
    assert!(
        p.log.is_empty(),
        "everything committed is collected: {:?}",
        p.log
    );
    assert_eq!(
        p.snapshot,
        Snapshot {
            decree: 7,
            data: map(&[("b", "4")]),
            last_req: [(id(C), 7)].into()
        }
    );
    for (key, value) in [
        ("a", None),
        ("b", Some("4")),
        ("c", None),
        ("never-written", None),
        ("z", None),
    ] {
        assert_eq!(net.read(P, G, key), Ok(value.map(b)), "{key}");
    }
    // The secondary lags by the commit point it has heard: 6 collected, 7 logged.
    let s = net.part(S, G).clone();
    assert_eq!((s.committed, s.snapshot.decree), (6, 6));
    assert_eq!(s.snapshot.data, map(&[("b", "4")]));
    assert_eq!(s.log.keys().copied().collect::<Vec<_>>(), vec![7]);
    assert_eq!(s.data_at(7), p.snapshot.data);

    // A learner gets the collected map.
    let o = net.send(
        META,
        P,
        Msg::AddSecondary {
            config: pc(1, Some(P), &[S]),
            node: id(L),
            incarnation: 1,
        },
    );
    let learns: Vec<Msg> = sends_to(&o, id(L));
    assert!(
        matches!(&learns[..], [Msg::Learn { snapshot, log, .. }] if *snapshot == p.snapshot && log.is_empty()),
        "{learns:?}"
    );
    net.settle();
    let l = net.part(L, G);
    assert_eq!(l.data_at(l.committed), map(&[("b", "4")]));
    assert_eq!(l.read(&b("a"), l.committed), None);
    assert_eq!(l.last_req(id(C)), Some(7));

    // Writes after the collection build on the collected map.
    net.send(D, P, put_w(G, 1, "a", "5"));
    net.send(D, P, del_w(G, 2, "b"));
    net.settle();
    assert_eq!(net.read(P, G, "a"), Ok(Some(b("5"))));
    assert_eq!(net.read(P, G, "b"), Ok(None));
    assert_eq!(net.part(P, G).snapshot.data, map(&[("a", "5")]));
}

/// A client operation on the partition of `Net::pair`.
#[derive(Clone, Debug)]
enum KOp {
    Put(usize, u8),
    Del(usize),
    Read(usize),
    /// Send the i-th write again (mod the count), same client and request.
    Retry(usize),
    /// Deliver this many messages in flight.
    Deliver(usize),
}

const KEYS: [&str; 3] = ["a", "b", "c"];

fn arb_kop() -> impl Strategy<Value = KOp> {
    prop_oneof![
        4 => (0..KEYS.len(), 0u8..4).prop_map(|(k, v)| KOp::Put(k, v)),
        2 => (0..KEYS.len()).prop_map(KOp::Del),
        3 => (0..KEYS.len()).prop_map(KOp::Read),
        1 => any::<usize>().prop_map(KOp::Retry),
        4 => (0usize..6).prop_map(KOp::Deliver),
    ]
}

proptest! {
    #![proptest_config(pt_config(CASES / 2))]

    /// A primary and a secondary, collecting or not, under puts, deletes, retries and
    /// reads of a few keys, with the network delivering at its own pace: every read
    /// returns the key's value in the sequential map at the primary's commit point, a
    /// retry never takes a decree, and on both replicas snapshot and log hold that map at
    /// every decree (the snapshot's map is the map at its decree). Once everything is
    /// delivered the primary holds the whole history, committed.
    #[test]
    fn a_replicated_partition_behaves_as_a_map(gc in any::<bool>(), ops in prop::collection::vec(arb_kop(), 1..60)) {
        let mut net = Net::pair(gc);
        // The mutation of decree d is model[d - 1].
        let mut model: Vec<Op> = Vec::new();
        let mut writes: Vec<Msg> = Vec::new();
        let fold = |model: &[Op], d: Decree| {
            let mut data = Map::new();
            for op in &model[..d as usize] {
                op.apply(&mut data);
            }
            data
        };
        for op in ops {
            let req = writes.len() as ReqId + 1;
            let write = match op {
                KOp::Put(key, v) => Some((put_w(G, req, KEYS[key], &v.to_string()), Op::Put(b(KEYS[key]), val(v)))),
                KOp::Del(key) => Some((del_w(G, req, KEYS[key]), Op::Del(b(KEYS[key])))),
                _ => None,
            };
            match op {
                KOp::Put(..) | KOp::Del(_) => {
                    let (msg, mop) = write.expect("a write");
                    net.send(C, P, msg.clone());
                    writes.push(msg);
                    model.push(mop);
                    prop_assert_eq!(net.part(P, G).last_decree() as usize, model.len(), "a new write did not take the next decree");
                }
                KOp::Retry(i) if !writes.is_empty() => {
                    let before = net.part(P, G).last_decree();
                    net.send(C, P, writes[i % writes.len()].clone());
                    prop_assert_eq!(net.part(P, G).last_decree(), before, "a retry took a decree");
                }
                KOp::Read(key) => {
                    let committed = net.part(P, G).committed;
                    let expected = fold(&model, committed).get(&b(KEYS[key])).cloned();
                    prop_assert_eq!(net.read(P, G, KEYS[key]), Ok(expected), "read of {} at commit point {}", KEYS[key], committed);
                }
                KOp::Deliver(n) => {
                    for _ in 0..n {
                        net.deliver_one();
                    }
                }
                _ => {}
            }
            for n in [P, S] {
                let part = net.part(n, G);
                prop_assert!(part.last_decree() as usize <= model.len());
                prop_assert!(part.snapshot.decree <= part.committed);
                prop_assert!(gc || part.snapshot.decree == 0, "collected without gc");
                prop_assert_eq!(&part.snapshot.data, &fold(&model, part.snapshot.decree), "replica {}: the snapshot's map", n);
                for d in part.snapshot.decree..=part.last_decree() {
                    prop_assert_eq!(part.data_at(d), fold(&model, d), "replica {}: the map at decree {}", n, d);
                }
            }
        }
        net.settle();
        let p = net.part(P, G).clone();
        prop_assert_eq!(p.committed as usize, model.len());
        let all = fold(&model, p.committed);
        for key in KEYS {
            prop_assert_eq!(net.read(P, G, key), Ok(all.get(&b(key)).cloned()));
        }
        if gc {
            prop_assert!(p.log.is_empty());
            prop_assert_eq!(&p.snapshot.data, &all);
        }
        // One answer per write (retries of a committed write are answered again).
        let answered: std::collections::BTreeSet<ReqId> = net
            .take_outside(C)
            .into_iter()
            .filter_map(|m| match m {
                Msg::WriteReply { req, result: Ok(()), .. } => Some(req),
                _ => None,
            })
            .collect();
        prop_assert_eq!(answered, (1..=writes.len() as ReqId).collect());
    }
}

// =======================================================================================
// A follower partition: checkpoint and shipped puts and deletes
// =======================================================================================

fn follower_net(secondary: bool) -> Net {
    let secs: &[usize] = if secondary { &[S] } else { &[] };
    let mut cfg = replica_cfg(
        vec![follower_pc(F, 1, Some(P), secs, SRC_META)],
        Bugs::none(),
    );
    cfg.accept_duplication = true;
    let ids: &[usize] = if secondary { &[P, S] } else { &[P] };
    Net::new(&cfg, ids)
}

fn apply_oks(net: &mut Net) -> Vec<Decree> {
    net.take_outside(SRC)
        .into_iter()
        .map(|m| match m {
            Msg::ApplyReply {
                gpid,
                decree,
                result: Ok(()),
            } if gpid == F => decree,
            other => panic!("not an ApplyReply Ok: {other:?}"),
        })
        .collect()
}

/// A follower partition applying a checkpoint replaces its whole map (keys absent from
/// the checkpoint are gone, also those written locally); shipped puts and deletes apply in
/// the source's order, within a batch too. A secondary of the follower partition holds the
/// checkpoint as a `Load` mutation and ends with the same map.
#[test]
fn a_follower_checkpoint_replaces_the_map_and_shipped_ops_apply_in_order() {
    for secondary in [false, true] {
        let mut net = follower_net(secondary);
        net.send(C, P, put_w(F, 1, "x", "local"));
        net.send(C, P, put_w(F, 2, "y", "local"));
        net.settle();
        assert_eq!(net.read(P, F, "x"), Ok(Some(b("local"))));

        let data = map(&[("y", "5"), ("z", "5")]);
        net.send(
            SRC,
            P,
            Msg::Checkpoint {
                gpid: F,
                origin: id(SRC_META),
                decree: 5,
                data: data.clone(),
            },
        );
        net.settle();
        assert_eq!(apply_oks(&mut net), vec![5]);
        let p = net.part(P, F);
        assert_eq!(
            p.data_at(p.committed),
            data,
            "secondary {secondary}: the checkpoint did not replace the map"
        );
        assert_eq!(
            p.log.get(&3).map(|e| &e.mutation),
            Some(&mutation_op(SRC_META, 5, Op::Load(data.clone())))
        );
        assert_eq!(
            net.read(P, F, "x"),
            Ok(None),
            "a key absent from the checkpoint survived it"
        );
        assert_eq!(net.read(P, F, "y"), Ok(Some(b("5"))));

        let ship = |entries: Vec<(Decree, Op)>| Msg::Ship {
            gpid: F,
            origin: id(SRC_META),
            entries,
        };
        net.send(
            SRC,
            P,
            ship(vec![
                (6, Op::Del(b("y"))),
                (7, Op::Put(b("z"), b("7"))),
                (8, Op::Put(b("w"), b("8"))),
                (9, Op::Del(b("w"))),
            ]),
        );
        net.settle();
        assert_eq!(apply_oks(&mut net), vec![6, 7, 8, 9]);
        let p = net.part(P, F);
        assert_eq!(
            p.data_at(p.committed),
            map(&[("z", "7")]),
            "secondary {secondary}"
        );
        net.send(
            SRC,
            P,
            ship(vec![
                (10, Op::Put(b("q"), b("10"))),
                (11, Op::Del(b("q"))),
                (12, Op::Del(b("r"))),
                (13, Op::Put(b("r"), b("13"))),
                (14, Op::Del(b("never-written"))),
            ]),
        );
        net.settle();
        assert_eq!(apply_oks(&mut net), vec![10, 11, 12, 13, 14]);
        let expected = map(&[("r", "13"), ("z", "7")]);
        let p = net.part(P, F).clone();
        assert_eq!(p.data_at(p.committed), expected, "secondary {secondary}");
        for (key, value) in [
            ("q", None),
            ("r", Some("13")),
            ("z", Some("7")),
            ("w", None),
            ("y", None),
            ("x", None),
        ] {
            assert_eq!(
                net.read(P, F, key),
                Ok(value.map(b)),
                "secondary {secondary}: {key}"
            );
        }
        // The follower's own log: the local writes, the checkpoint, the source's decrees.
        let reqs: Vec<(usize, ReqId)> = p
            .log
            .values()
            .map(|e| (usize::from(e.mutation.client), e.mutation.req))
            .collect();
        let mut expected_reqs = vec![(C, 1), (C, 2)];
        expected_reqs.extend((5..=14).map(|d| (SRC_META, d)));
        assert_eq!(reqs, expected_reqs);
        if secondary {
            let s = net.part(S, F);
            assert_eq!(
                s.log.get(&3),
                p.log.get(&3),
                "the secondary does not hold the checkpoint"
            );
            assert_eq!(s.data_at(s.last_decree()), expected);
        }
    }
}

// =======================================================================================
// The client's key operations
// =======================================================================================

/// A client's put, get and delete reach the replica as `Write { value: Some }`, `Read`
/// and `Write { value: None }` of the key; the results report the values read.
#[test]
fn the_client_puts_gets_and_deletes_keys() {
    let cfg = ClientCfg {
        meta: id(META),
        gpid: G,
        ops: vec![
            ClientOp::put("a", "1"),
            ClientOp::get("a"),
            ClientOp::get("b"),
            ClientOp::del("a"),
            ClientOp::get("a"),
        ],
        max_attempts: 2,
        request_timeout: None,
        first_req: 1,
        route: None,
        bugs: Bugs::none(),
    };
    let mut net = Net::pair(false);
    let (mut client, o) = Sim::start(Node::Client(cfg), id(C), None);
    assert_eq!(sends(&o), vec![(id(META), Msg::QueryConfig { gpid: G })]);
    let mut o = client.msg(
        id(META),
        Msg::QueryConfigReply {
            gpid: G,
            config: Some(pc(1, Some(P), &[S])),
            incarnation: Some(1),
        },
    );
    let mut sent = Vec::new();
    for _ in 0..20 {
        let ops = sends(&o);
        if ops.is_empty() {
            break;
        }
        for (to, m) in ops {
            assert_eq!(to, id(P));
            sent.push(m.clone());
            net.send(C, P, m);
        }
        net.settle();
        let replies = net.take_outside(C);
        assert_eq!(replies.len(), 1, "{replies:?}");
        o = client.msg(id(P), replies[0].clone());
    }
    let expected = vec![
        put_w(G, 1, "a", "1"),
        Msg::Read {
            gpid: G,
            req: 2,
            key: b("a"),
        },
        Msg::Read {
            gpid: G,
            req: 3,
            key: b("b"),
        },
        del_w(G, 4, "a"),
        Msg::Read {
            gpid: G,
            req: 5,
            key: b("a"),
        },
    ];
    assert_eq!(sent, expected);
    assert!(client.client().done());
    let results = vec![
        OpResult::WriteOk,
        OpResult::ReadOk(Some(b("1"))),
        OpResult::ReadOk(None),
        OpResult::WriteOk,
        OpResult::ReadOk(None),
    ];
    assert_eq!(client.client().results, results);
}

// =======================================================================================
// Bytes: the text form
// =======================================================================================

#[test]
fn bytes_text_examples() {
    let cases: [(&[u8], &str); 9] = [
        (b"", ""),
        (b"k", "k"),
        (b"user:1 x", "user:1 x"),
        (b"a\\b", "a\\\\b"),
        (b"\\x41", "\\\\x41"),
        (b"\x00\xff", "\\x00\\xff"),
        (b"line\n", "line\\x0a"),
        // Printable UTF-8 stays as it is; a control character escapes every non-ASCII byte.
        ("é".as_bytes(), "é"),
        ("é\t".as_bytes(), "\\xc3\\xa9\\x09"),
    ];
    for (raw, text) in cases {
        let bytes = Bytes::from(raw);
        assert_eq!(bytes.to_text(), text, "{raw:?}");
        assert_eq!(bytes.to_string(), text, "Display is the text form");
        assert_eq!(
            format!("{bytes:?}"),
            format!("{text:?}"),
            "Debug is the quoted text form"
        );
        assert_eq!(Bytes::from_text(text), Some(bytes.clone()), "{text:?}");
        assert_eq!(bytes.as_slice(), raw);
        assert_eq!((bytes.len(), bytes.is_empty()), (raw.len(), raw.is_empty()));
    }
    // Escapes in either case of hex digit; plain text parses as itself.
    assert_eq!(
        Bytes::from_text("\\xAb\\xaB"),
        Some(Bytes::from(vec![0xab, 0xab]))
    );
    assert_eq!(Bytes::from_text("plain"), Some(b("plain")));
    assert_eq!(Bytes::from(vec![b'k']), b("k"));
}

#[test]
fn bytes_from_text_refuses_malformed_escapes() {
    for t in [
        "\\", "a\\", "\\q", "\\x", "\\x4", "\\xg0", "\\x0g", "\\xé", "\\X41", "\\ ", "\\x 1",
    ] {
        assert_eq!(Bytes::from_text(t), None, "{t:?} parsed");
    }
}

/// `\x` takes exactly two hex digits; a sign is not a digit. (`u8::from_str_radix`
/// accepts a leading `+`, so `from_text` parses `\x+1` as byte 1 and `\x+f` as 15: the
/// text form is not unique, and a malformed escape is accepted.)
#[test]
fn bytes_from_text_refuses_a_signed_escape() {
    for t in ["\\x+1", "\\x+f", "a\\x+0"] {
        assert_eq!(Bytes::from_text(t), None, "{t:?} parsed");
    }
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Any bytes survive the text form, which is printable (no control characters: safe in
    /// a trace line or an event log).
    #[test]
    fn bytes_text_round_trip(raw in prop::collection::vec(any::<u8>(), 0..48)) {
        let bytes = Bytes::from(raw.clone());
        let text = bytes.to_text();
        prop_assert!(!text.chars().any(char::is_control), "{:?} -> {:?}", raw, text);
        prop_assert_eq!(Bytes::from_text(&text), Some(bytes.clone()), "{:?} -> {:?}", raw, text);
        prop_assert_eq!(bytes.as_slice(), &raw[..]);
    }

    /// Mostly printable input, where the unescaped path is taken.
    #[test]
    fn bytes_text_round_trip_of_strings(s in "[ -~é\\\\]{0,24}") {
        let bytes = Bytes::from(s.as_str());
        prop_assert_eq!(Bytes::from_text(&bytes.to_text()), Some(bytes));
    }

    /// Whatever text parses, its bytes' text form parses back to the same bytes.
    #[test]
    fn bytes_from_text_of_any_text_is_consistent(t in "(\\\\|x|[0-9a-fA-F+]|[ -~]){0,16}") {
        if let Some(bytes) = Bytes::from_text(&t) {
            prop_assert_eq!(Bytes::from_text(&bytes.to_text()), Some(bytes));
        }
    }
}

// =======================================================================================
// partition_of: data placement
// =======================================================================================

/// Data placement depends on these outputs: a key lives in `partition_of(key, n)` of an
/// n-partition table, so a change to the function moves existing keys to partitions that
/// do not hold them. Computed once and pinned (FNV-1a 64 of the key modulo n; the hashes
/// of "", "a" and "foobar" are the published test vectors 0xcbf29ce484222325,
/// 0xaf63dc4c8601ec8c and 0x85944171f73967e8).
const PINNED_PARTITIONS: [u8; 7] = [1, 2, 3, 4, 8, 16, 255];
const PINNED: [(&[u8], [u8; 7]); 7] = [
    (b"", [0, 1, 2, 1, 5, 5, 47]),
    (b"a", [0, 0, 1, 0, 4, 12, 61]),
    (b"foobar", [0, 0, 0, 0, 0, 8, 78]),
    (b"k", [0, 0, 2, 2, 2, 10, 86]),
    (b"user:1", [0, 1, 0, 3, 3, 11, 192]),
    (b"user:2", [0, 0, 1, 2, 6, 14, 118]),
    (b"\xff\x00", [0, 0, 1, 2, 2, 10, 244]),
];

#[test]
fn partition_of_is_pinned() {
    for (key, expected) in PINNED {
        for (n, want) in PINNED_PARTITIONS.iter().zip(expected) {
            assert_eq!(partition_of(key, *n), want, "partition_of({key:?}, {n})");
        }
    }
    // No partitions is treated as one (never a division by zero).
    assert_eq!(partition_of(b"k", 0), 0);
}

proptest! {
    #![proptest_config(pt_config(CASES))]

    /// Always a partition of the table, and a function of the key's bytes only.
    #[test]
    fn partition_of_is_always_a_partition(key in prop::collection::vec(any::<u8>(), 0..32), partitions in 1u8..=255) {
        let p = partition_of(&key, partitions);
        prop_assert!(p < partitions, "partition_of({:?}, {}) = {}", key, partitions, p);
        prop_assert_eq!(partition_of(&key, partitions), p);
        prop_assert_eq!(partition_of(Bytes::from(key.clone()).as_slice(), partitions), p);
        prop_assert_eq!(partition_of(&key, 1), 0);
    }

    /// Every partition count in 1..=255 for one key (the whole range, not a sample).
    #[test]
    fn partition_of_every_count(key in prop::collection::vec(any::<u8>(), 0..16)) {
        for partitions in 1u8..=255 {
            prop_assert!(partition_of(&key, partitions) < partitions);
        }
    }
}
