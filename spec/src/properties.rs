//! Every property, with its stable ID (see SPEC.md for one paragraph on each).
use crate::model::{PetrelModel, State};
use petrel_core::replica::Status;
use petrel_core::*;
use stateright::actor::Id;
use stateright::semantics::ConsistencyTester;
use stateright::{Expectation, Property};
use std::collections::BTreeMap;

/// The stable ID of a property name ("SAFE-3 log-agreement" → "SAFE-3").
pub fn id_of(name: &str) -> &str {
    name.split_whitespace().next().unwrap_or(name)
}

pub fn all(m: &PetrelModel) -> Vec<Property<PetrelModel>> {
    let mut v = vec![
        Property {
            expectation: Expectation::Always,
            name: "SAFE-1 one-serving-primary",
            condition: one_serving_primary,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-2 committed-never-lost",
            condition: committed_never_lost,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-3 log-agreement",
            condition: log_agreement,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-4 ballot-monotonic",
            condition: |_, s| !s.history.ballot_regressed,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-5 committed-le-prepared",
            condition: committed_le_prepared,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-6 no-broken-invariant",
            condition: no_broken,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-7 linearizable",
            condition: |_, s| s.history.ops.is_consistent(),
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-8 one-config-per-ballot",
            condition: one_config_per_ballot,
        },
        Property {
            expectation: Expectation::Always,
            name: "SAFE-9 primary-not-recovering",
            condition: primary_not_recovering,
        },
        Property {
            expectation: Expectation::Eventually,
            name: "LIVE-1 clients-finish",
            condition: clients_finish,
        },
    ];
    v.push(Property {
        expectation: Expectation::Always,
        name: "SAFE-10 dup-status-transitions",
        condition: |_, s| !s.history.bad_dup_transition,
    });
    v.push(Property {
        expectation: Expectation::Always,
        name: "SAFE-11 follower-create-idempotent",
        condition: follower_create_idempotent,
    });
    if m.scenario.expect_success {
        v.push(Property {
            expectation: Expectation::Eventually,
            name: "LIVE-2 clients-succeed",
            condition: clients_succeed,
        });
    }
    v.push(Property {
        expectation: Expectation::Always,
        name: "SAFE-12 follower-applies-in-order",
        condition: follower_in_order,
    });
    v.push(Property {
        expectation: Expectation::Always,
        name: "SAFE-13 confirmed-le-shipped-le-committed",
        condition: confirmed_le_shipped,
    });
    v.push(Property {
        expectation: Expectation::Always,
        name: "SAFE-14 no-gc-of-unconfirmed-log",
        condition: no_gc_unconfirmed,
    });
    if m.foreign.is_some() {
        v.push(Property {
            expectation: Expectation::Always,
            name: "SAFE-15 foreign-harmless",
            condition: foreign_harmless,
        });
    }
    if m.scenario.expect_full_replication {
        v.push(Property {
            expectation: Expectation::Eventually,
            name: "LIVE-5 full-replication",
            condition: fully_replicated,
        });
    }
    if m.scenario.follower.is_some() {
        v.push(Property {
            expectation: Expectation::Eventually,
            name: "LIVE-3 dup-reaches-log-or-stalls",
            condition: dup_progress,
        });
        v.push(Property {
            expectation: Expectation::Eventually,
            name: "LIVE-4 follower-converges",
            condition: follower_converges,
        });
    }
    v
}

/// Every partition of cluster A is back at its replica count, as its live meta server
/// knows it and its primary holds it: a live primary and live secondaries, as many as the
/// table asks for (VOPR's liveness mode: after the faults, full replication returns).
fn fully_replicated(m: &PetrelModel, s: &State) -> bool {
    if m.crashed(s, m.meta) || (m.scenario.crash_certain && s.history.crashes_left > 0) {
        return false;
    }
    let Some(meta) = m.meta_state(s) else {
        return false;
    };
    meta.configs.values().all(|c| {
        let live = |r: &Id| !m.crashed(s, *r);
        c.member_count() == usize::from(c.max_replica_count)
            && c.members().all(|r| live(&r))
            && c.primary.is_some_and(|p| {
                m.replica(s, p)
                    .and_then(|r| r.parts.get(&c.gpid))
                    .is_some_and(|part| {
                        part.config.ballot == c.ballot
                            && part.status == petrel_core::replica::Status::Primary
                    })
            })
    })
}

/// The follower meta server never answers "exists" to the duplication that owns the table.
fn follower_create_idempotent(m: &PetrelModel, s: &State) -> bool {
    let Some(b) = m.meta_b_state(s) else {
        return true;
    };
    s.network.iter_deliverable().all(|env| match &env.msg {
        Msg::CreateFollowerReply {
            source,
            result: Err(petrel_core::dup::CreateError::Exists),
        } => !b.followers.values().any(|owner| owner == source),
        _ => true,
    })
}

/// Every duplication reaches LOG, or says why it cannot.
fn dup_progress(m: &PetrelModel, s: &State) -> bool {
    m.meta_state(s).is_none_or(|meta| {
        meta.dups
            .values()
            .all(|d| d.status == petrel_core::dup::DupStatus::Log || d.stall.is_some())
    })
}

/// A replica's partition as it matters for durability: the live state, or what its disk
/// holds while it is down.
struct View {
    snapshot: Snapshot,
    log: BTreeMap<Decree, Entry>,
    committed: Decree,
}

impl View {
    /// The map as of decree `d` (from the snapshot on).
    fn data_at(&self, d: Decree) -> Map<Key, Value> {
        let mut data = self.snapshot.data.clone();
        for (_, e) in self.log.range(..=d) {
            e.mutation.op.apply(&mut data);
        }
        data
    }
}

fn durable_view_of(m: &PetrelModel, s: &State, r: Id, gpid: Gpid) -> Option<View> {
    if m.crashed(s, r) {
        let p = m.storage(s, r)?.parts.get(&gpid)?;
        Some(View {
            snapshot: p.snapshot.clone(),
            log: p.log.clone(),
            committed: p.committed,
        })
    } else {
        let p = m.replica(s, r)?.parts.get(&gpid)?;
        Some(View {
            snapshot: p.snapshot.clone(),
            log: p.log.clone(),
            committed: p.committed,
        })
    }
}

fn durable_view(m: &PetrelModel, s: &State, r: Id) -> Option<View> {
    durable_view_of(m, s, r, crate::model::GPID)
}

/// The follower partition of the model's duplication (dup 1 → table 1).
const FOLLOWER_GPID: Gpid = Gpid {
    table: 1,
    partition: 0,
};

/// The follower holds the source's mutations at most once each, in decree order, and
/// only committed ones: after applying source decree d (a shipped mutation, or a
/// checkpoint taken at d) its map equals the source's map at d. (The model's follower
/// has no clients of its own, so its map is the source's alone.)
fn follower_in_order(m: &PetrelModel, s: &State) -> bool {
    let origin = m.meta;
    let sources: Vec<View> = m
        .replicas
        .iter()
        .filter_map(|r| durable_view(m, s, *r))
        .collect();
    m.replicas_b
        .iter()
        .filter_map(|r| durable_view_of(m, s, *r, FOLLOWER_GPID))
        .all(|b| {
            let mut last: Option<ReqId> = b.snapshot.last_req.get(&origin).copied();
            b.log
                .iter()
                .filter(|(_, e)| e.mutation.client == origin)
                .all(|(bd, e)| {
                    let d = e.mutation.req;
                    let ordered = last.is_none_or(|l| d > l);
                    last = Some(d);
                    let committed: Vec<&View> =
                        sources.iter().filter(|a| a.committed >= d).collect();
                    let held = b.data_at(*bd);
                    ordered
                        && !committed.is_empty()
                        && committed
                            .iter()
                            .filter(|a| a.snapshot.decree <= d)
                            .all(|a| a.data_at(d) == held)
                })
        })
}

/// Each source duplicator in LOG: confirmed <= shipped <= committed; and what the meta
/// server persisted as confirmed is committed on the follower.
fn confirmed_le_shipped(m: &PetrelModel, s: &State) -> bool {
    let duplicators_ok = m.replicas.iter().filter(|r| !m.crashed(s, **r)).all(|r| {
        m.replica(s, *r).is_none_or(|st| {
            st.parts.values().all(|p| {
                p.dups.values().all(|d| {
                    d.entry.status != petrel_core::dup::DupStatus::Log
                        || (d.confirmed <= d.shipped && d.shipped <= p.committed)
                })
            })
        })
    });
    let Some(meta) = m.meta_state(s) else {
        return duplicators_ok;
    };
    let origin = m.meta;
    let held: Decree = m
        .replicas_b
        .iter()
        .filter_map(|r| durable_view_of(m, s, *r, FOLLOWER_GPID))
        .filter_map(|b| {
            let logged = b
                .log
                .range(..=b.committed)
                .filter(|(_, e)| e.mutation.client == origin)
                .map(|(_, e)| e.mutation.req)
                .max();
            logged.or_else(|| b.snapshot.last_req.get(&origin).copied())
        })
        .max()
        .unwrap_or(0);
    // Fail mode skip gives refused batches up: the record says how many.
    duplicators_ok
        && meta
            .dups
            .values()
            .all(|d| d.skipped > 0 || d.confirmed.get(&0).is_none_or(|c| *c == 0 || *c <= held))
}

/// No source replica collected log entries a LOG or PAUSE duplication has not confirmed.
fn no_gc_unconfirmed(m: &PetrelModel, s: &State) -> bool {
    use petrel_core::dup::DupStatus;
    let Some(meta) = m.meta_state(s) else {
        return true;
    };
    let bound = meta
        .dups
        .values()
        .filter(|d| matches!(d.status, DupStatus::Log | DupStatus::Pause))
        .map(|d| d.confirmed.get(&0).copied().unwrap_or(0))
        .min();
    let Some(bound) = bound else { return true };
    m.replicas
        .iter()
        .filter_map(|r| durable_view(m, s, *r))
        .all(|v| v.snapshot.decree <= bound)
}

/// Every duplication ends stalled with a reason, or in LOG with everything the source
/// committed confirmed and the follower holding the source's map (or, in fail mode
/// skip, with the refused batches counted as skipped).
fn follower_converges(m: &PetrelModel, s: &State) -> bool {
    let Some(meta) = m.meta_state(s) else {
        return true;
    };
    let sources: Vec<View> = m
        .replicas
        .iter()
        .filter_map(|r| durable_view(m, s, *r))
        .collect();
    let Some(top) = sources.iter().max_by_key(|v| v.committed) else {
        return true;
    };
    let value = top.data_at(top.committed);
    let follower_value = m
        .replicas_b
        .iter()
        .filter_map(|r| durable_view_of(m, s, *r, FOLLOWER_GPID))
        .max_by_key(|v| v.committed)
        .map(|v| v.data_at(v.committed))
        .unwrap_or_default();
    clients_finish(m, s)
        && meta.dups.values().all(|d| {
            d.stall.is_some()
                || (d.status == petrel_core::dup::DupStatus::Log
                    && d.confirmed.get(&0).is_some_and(|c| *c >= top.committed)
                    && (follower_value == value || d.skipped > 0))
        })
}

fn one_serving_primary(m: &PetrelModel, s: &State) -> bool {
    m.replicas
        .iter()
        .filter(|r| !m.crashed(s, **r))
        .filter(|r| {
            // Serving: Primary and holding its lease (always held where leases are
            // abstracted away). A deposed primary cut off from the meta server still
            // thinks it is Primary until it hears otherwise, but serves nothing.
            m.replica(s, **r).is_some_and(|st| {
                st.lease.held
                    && st
                        .parts
                        .get(&crate::model::GPID)
                        .is_some_and(|p| p.status == Status::Primary)
            })
        })
        .count()
        <= 1
}

/// Every committed mutation is held by every member of the meta's current configuration.
fn committed_never_lost(m: &PetrelModel, s: &State) -> bool {
    let Some(meta) = m.meta_state(s) else {
        return true;
    };
    let Some(config) = meta.configs.get(&crate::model::GPID) else {
        return true;
    };
    let mut committed: BTreeMap<Decree, Mutation> = BTreeMap::new();
    let mut top: Decree = 0;
    for &r in &m.replicas {
        if let Some(v) = durable_view(m, s, r) {
            top = top.max(v.committed);
            for (d, e) in v.log.range(..=v.committed) {
                committed.insert(*d, e.mutation.clone());
            }
        }
    }
    config.members().all(|member| {
        // A member whose disk was replaced holds nothing and has no life (0) until the meta
        // server, which it asks for one, takes it out: a lost disk is not a lost commit.
        let life = if m.crashed(s, member) {
            m.storage(s, member).map(|st| st.incarnation)
        } else {
            m.replica(s, member).map(|r| r.incarnation)
        };
        if life == Some(0) {
            return true;
        }
        let Some(v) = durable_view(m, s, member) else {
            return top == 0;
        };
        // A collected prefix counts as held (its snapshot is of committed decrees).
        v.snapshot
            .decree
            .max(v.log.keys().next_back().copied().unwrap_or(0))
            >= top
            && committed.iter().all(|(d, mu)| {
                *d <= v.snapshot.decree || v.log.get(d).map(|e| &e.mutation) == Some(mu)
            })
    })
}

/// Committed prefixes agree: the same decree holds the same mutation everywhere.
fn log_agreement(m: &PetrelModel, s: &State) -> bool {
    let views: Vec<_> = m
        .replicas
        .iter()
        .filter_map(|r| durable_view(m, s, *r))
        .collect();
    for (i, a) in views.iter().enumerate() {
        for b in views.iter().skip(i + 1) {
            let upto = a.committed.min(b.committed);
            let from = a.snapshot.decree.max(b.snapshot.decree).saturating_add(1);
            for d in from..=upto {
                if a.log.get(&d).map(|e| &e.mutation) != b.log.get(&d).map(|e| &e.mutation) {
                    return false;
                }
            }
        }
    }
    true
}

fn committed_le_prepared(m: &PetrelModel, s: &State) -> bool {
    m.replicas.iter().filter(|r| !m.crashed(s, **r)).all(|r| {
        m.replica(s, *r).is_none_or(|st| {
            st.parts.values().all(|p| {
                (p.snapshot.decree.saturating_add(1)..=p.committed).all(|d| p.log.contains_key(&d))
            })
        })
    })
}

fn no_broken(m: &PetrelModel, s: &State) -> bool {
    m.replicas
        .iter()
        .all(|r| m.replica(s, *r).is_none_or(|st| st.broken.is_none()))
}

/// No two actors know different configurations under the same ballot.
fn one_config_per_ballot(m: &PetrelModel, s: &State) -> bool {
    let mut seen: BTreeMap<(Gpid, Ballot), &PartitionConfig> = BTreeMap::new();
    let mut configs: Vec<&PartitionConfig> = Vec::new();
    if let Some(meta) = m.meta_state(s) {
        configs.extend(meta.configs.values());
    }
    for &r in &m.replicas {
        if let Some(st) = m.replica(s, r) {
            configs.extend(st.parts.values().map(|p| &p.config));
        }
    }
    // Committed configurations still travelling from the meta server count too.
    for env in s.network.iter_deliverable() {
        match env.msg {
            Msg::ConfigUpdate { config, .. }
            | Msg::ProposeConfigReply {
                result: Ok(config), ..
            } => configs.push(config),
            _ => {}
        }
    }
    for c in configs {
        if c.ballot == 0 {
            continue;
        }
        match seen.get(&(c.gpid, c.ballot)) {
            Some(other) if (other.primary, &other.secondaries) != (c.primary, &c.secondaries) => {
                return false
            }
            Some(_) => {}
            None => {
                seen.insert((c.gpid, c.ballot), c);
            }
        }
    }
    true
}

fn primary_not_recovering(m: &PetrelModel, s: &State) -> bool {
    m.replicas.iter().filter(|r| !m.crashed(s, **r)).all(|r| {
        m.replica(s, *r).is_none_or(|st| {
            st.parts
                .values()
                .all(|p| !(p.status == Status::Primary && p.recovering))
        })
    })
}

fn clients_finish(m: &PetrelModel, s: &State) -> bool {
    m.clients
        .iter()
        .all(|c| m.client(s, *c).is_some_and(|st| st.done()))
}

fn clients_succeed(m: &PetrelModel, s: &State) -> bool {
    m.clients.iter().all(|c| {
        m.client(s, *c).is_some_and(|st| {
            st.done() && st.results.iter().all(|r| !matches!(r, OpResult::Failed(_)))
        })
    })
}

/// Nothing the foreign sender forged took effect in cluster A: no A replica (live or on
/// disk) knows a configuration at the forged ballot or naming the foreign node, holds the
/// forged value or a mutation of the foreign node, or took a forged duplication
/// announcement; A's meta server never counted the foreign node alive, never created the
/// forged table or a duplication towards it, and no duplication was paused, switched to
/// skip, or confirmed beyond what A committed.
fn foreign_harmless(m: &PetrelModel, s: &State) -> bool {
    use crate::model::{forged_value, FORGED_BALLOT, FORGED_TABLE};
    let Some(f) = m.foreign else { return true };
    let bad_config = |c: &PartitionConfig| c.ballot >= FORGED_BALLOT || c.is_member(f);
    let bad_entry = |e: &Entry| {
        e.mutation.client == f
            || match &e.mutation.op {
                Op::Put(_, v) => *v == forged_value(),
                Op::Load(data) => data.values().any(|v| *v == forged_value()),
                Op::Del(_) => false,
            }
    };
    let bad_snapshot = |sn: &Snapshot| {
        sn.data.values().any(|v| *v == forged_value()) || sn.last_req.contains_key(&f)
    };
    let replicas_ok = m.replicas.iter().all(|r| {
        let live = m.replica(s, *r).is_none_or(|st| {
            st.parts.values().all(|p| {
                !bad_config(&p.config)
                    && !p.log.values().any(bad_entry)
                    && !bad_snapshot(&p.snapshot)
                    && !p.learners.contains_key(&f)
                    && p.dup_entries
                        .values()
                        .all(|e| e.version < 100 && e.confirmed < FORGED_BALLOT)
            })
        });
        let disk = m.storage(s, *r).is_none_or(|st| {
            st.parts.values().all(|p| {
                !bad_config(&p.config)
                    && !p.log.values().any(bad_entry)
                    && !bad_snapshot(&p.snapshot)
            })
        });
        live && disk
    });
    let meta_ok = m.meta_state(s).is_none_or(|meta| {
        !meta.alive.contains_key(&f)
            && !meta.lives.contains_key(&f)
            && meta
                .configs
                .values()
                .all(|c| !bad_config(c) && c.gpid.table != FORGED_TABLE)
            && meta.dups.values().all(|d| {
                d.remote_meta != f
                    && matches!(
                        d.status,
                        petrel_core::dup::DupStatus::Prepare
                            | petrel_core::dup::DupStatus::App
                            | petrel_core::dup::DupStatus::Log
                    )
                    && d.fail_mode
                        == m.scenario
                            .follower
                            .as_ref()
                            .map_or(d.fail_mode, |fo| fo.fail_mode)
                    && d.confirmed.values().all(|c| *c < FORGED_BALLOT)
            })
    });
    replicas_ok && meta_ok
}
