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
        Property { expectation: Expectation::Always, name: "SAFE-1 one-serving-primary", condition: one_serving_primary },
        Property { expectation: Expectation::Always, name: "SAFE-2 committed-never-lost", condition: committed_never_lost },
        Property { expectation: Expectation::Always, name: "SAFE-3 log-agreement", condition: log_agreement },
        Property { expectation: Expectation::Always, name: "SAFE-4 ballot-monotonic", condition: |_, s| !s.history.ballot_regressed },
        Property { expectation: Expectation::Always, name: "SAFE-5 committed-le-prepared", condition: committed_le_prepared },
        Property { expectation: Expectation::Always, name: "SAFE-6 no-broken-invariant", condition: no_broken },
        Property { expectation: Expectation::Always, name: "SAFE-7 linearizable", condition: |_, s| s.history.ops.is_consistent() },
        Property { expectation: Expectation::Always, name: "SAFE-8 one-config-per-ballot", condition: one_config_per_ballot },
        Property { expectation: Expectation::Always, name: "SAFE-9 primary-not-recovering", condition: primary_not_recovering },
        Property { expectation: Expectation::Eventually, name: "LIVE-1 clients-finish", condition: clients_finish },
    ];
    v.push(Property { expectation: Expectation::Always, name: "SAFE-10 dup-status-transitions", condition: |_, s| !s.history.bad_dup_transition });
    v.push(Property { expectation: Expectation::Always, name: "SAFE-11 follower-create-idempotent", condition: follower_create_idempotent });
    if m.scenario.expect_success {
        v.push(Property { expectation: Expectation::Eventually, name: "LIVE-2 clients-succeed", condition: clients_succeed });
    }
    if m.scenario.follower.is_some() {
        v.push(Property { expectation: Expectation::Eventually, name: "LIVE-3 dup-reaches-log-or-stalls", condition: dup_progress });
    }
    v
}

/// The follower meta server never answers "exists" to the duplication that owns the table.
fn follower_create_idempotent(m: &PetrelModel, s: &State) -> bool {
    let Some(b) = m.meta_b_state(s) else { return true };
    s.network.iter_deliverable().all(|env| match &env.msg {
        Msg::CreateFollowerReply { source, result: Err(petrel_core::dup::CreateError::Exists) } => {
            !b.followers.values().any(|owner| owner == source)
        }
        _ => true,
    })
}

/// Every duplication reaches LOG, or says why it cannot.
fn dup_progress(m: &PetrelModel, s: &State) -> bool {
    m.meta_state(s).is_none_or(|meta| {
        meta.dups.values().all(|d| d.status == petrel_core::dup::DupStatus::Log || d.stall.is_some())
    })
}

/// A replica's log and commit point as they matter for durability: the live state, or
/// what its disk holds while it is down.
fn durable_view(m: &PetrelModel, s: &State, r: Id) -> Option<(BTreeMap<Decree, Entry>, Decree)> {
    if m.crashed(s, r) {
        m.storage(s, r).and_then(|st| st.parts.get(&crate::model::GPID)).map(|p| (p.log.clone(), p.committed))
    } else {
        m.replica(s, r).and_then(|st| st.parts.get(&crate::model::GPID)).map(|p| (p.log.clone(), p.committed))
    }
}

fn one_serving_primary(m: &PetrelModel, s: &State) -> bool {
    m.replicas
        .iter()
        .filter(|r| !m.crashed(s, **r))
        .filter(|r| m.replica(s, **r).and_then(|st| st.parts.get(&crate::model::GPID)).is_some_and(|p| p.status == Status::Primary))
        .count()
        <= 1
}

/// Every committed mutation is held by every member of the meta's current configuration.
fn committed_never_lost(m: &PetrelModel, s: &State) -> bool {
    let Some(meta) = m.meta_state(s) else { return true };
    let Some(config) = meta.configs.get(&crate::model::GPID) else { return true };
    let mut committed: BTreeMap<Decree, Mutation> = BTreeMap::new();
    for &r in &m.replicas {
        if let Some((log, c)) = durable_view(m, s, r) {
            for (d, e) in log.range(..=c) {
                committed.insert(*d, e.mutation);
            }
        }
    }
    config.members().all(|member| {
        let Some((log, _)) = durable_view(m, s, member) else { return committed.is_empty() };
        committed.iter().all(|(d, mu)| log.get(d).map(|e| e.mutation) == Some(*mu))
    })
}

/// Committed prefixes agree: the same decree holds the same mutation everywhere.
fn log_agreement(m: &PetrelModel, s: &State) -> bool {
    let views: Vec<_> = m.replicas.iter().filter_map(|r| durable_view(m, s, *r)).collect();
    for (i, (la, ca)) in views.iter().enumerate() {
        for (lb, cb) in views.iter().skip(i + 1) {
            let upto = (*ca).min(*cb);
            for d in 1..=upto {
                if la.get(&d).map(|e| e.mutation) != lb.get(&d).map(|e| e.mutation) {
                    return false;
                }
            }
        }
    }
    true
}

fn committed_le_prepared(m: &PetrelModel, s: &State) -> bool {
    m.replicas.iter().filter(|r| !m.crashed(s, **r)).all(|r| {
        m.replica(s, *r).is_none_or(|st| st.parts.values().all(|p| (1..=p.committed).all(|d| p.log.contains_key(&d))))
    })
}

fn no_broken(m: &PetrelModel, s: &State) -> bool {
    m.replicas.iter().all(|r| m.replica(s, *r).is_none_or(|st| st.broken.is_none()))
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
            Msg::ConfigUpdate { config, .. } | Msg::ProposeConfigReply { result: Ok(config), .. } => configs.push(config),
            _ => {}
        }
    }
    for c in configs {
        if c.ballot == 0 {
            continue;
        }
        match seen.get(&(c.gpid, c.ballot)) {
            Some(other) if (other.primary, &other.secondaries) != (c.primary, &c.secondaries) => return false,
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
        m.replica(s, *r).is_none_or(|st| st.parts.values().all(|p| !(p.status == Status::Primary && p.recovering)))
    })
}

fn clients_finish(m: &PetrelModel, s: &State) -> bool {
    m.clients.iter().all(|c| m.client(s, *c).is_some_and(|st| st.done()))
}

fn clients_succeed(m: &PetrelModel, s: &State) -> bool {
    m.clients.iter().all(|c| {
        m.client(s, *c).is_some_and(|st| st.done() && st.results.iter().all(|r| !matches!(r, OpResult::Failed(_))))
    })
}
