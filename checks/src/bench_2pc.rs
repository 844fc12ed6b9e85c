//! Two-phase commit (Gray and Lamport, "Consensus on Transaction Commit"), for
//! `petrel-check bench`.
//!
//! The same system as stateright 0.31's `examples/2pc.rs`: one transaction manager, `rms`
//! resource managers, a set of messages that are never lost (a message once sent stays
//! receivable), the same actions and the same properties (`abort agreement` and
//! `commit agreement` sometimes, `consistent` always), written for this bench. Plain
//! `Model` (no actors), no symmetry reduction.

use petrel_checks::engine::{Codec, Fairness};
use stateright::{Model, Property};
use std::collections::BTreeSet;

/// A resource manager's state.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub enum Rm {
    Working,
    Prepared,
    Committed,
    Aborted,
}

/// The transaction manager's state.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Tm {
    Init,
    Committed,
    Aborted,
}

/// A message; the set of sent messages only grows.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq, PartialOrd, Ord)]
pub enum Msg {
    Prepared(usize),
    Commit,
    Abort,
}

#[derive(Clone, Debug, Eq, Hash, PartialEq)]
pub struct State {
    rm: Vec<Rm>,
    tm: Tm,
    tm_prepared: Vec<bool>,
    msgs: BTreeSet<Msg>,
}

#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum Step {
    TmRcvPrepared(usize),
    TmCommit,
    TmAbort,
    RmPrepare(usize),
    RmChooseToAbort(usize),
    RmRcvCommit(usize),
    RmRcvAbort(usize),
}

/// `rms` resource managers.
pub struct TwoPc {
    pub rms: usize,
}

impl Model for TwoPc {
    type State = State;
    type Action = Step;

    fn init_states(&self) -> Vec<State> {
        vec![State {
            rm: vec![Rm::Working; self.rms],
            tm: Tm::Init,
            tm_prepared: vec![false; self.rms],
            msgs: BTreeSet::new(),
        }]
    }

    fn actions(&self, s: &State, out: &mut Vec<Step>) {
        let tm_init = s.tm == Tm::Init;
        if tm_init && s.tm_prepared.iter().all(|&p| p) {
            out.push(Step::TmCommit);
        }
        if tm_init {
            out.push(Step::TmAbort);
        }
        let commit = s.msgs.contains(&Msg::Commit);
        let abort = s.msgs.contains(&Msg::Abort);
        for (i, &r) in s.rm.iter().enumerate() {
            if tm_init && s.msgs.contains(&Msg::Prepared(i)) {
                out.push(Step::TmRcvPrepared(i));
            }
            if r == Rm::Working {
                out.push(Step::RmPrepare(i));
                out.push(Step::RmChooseToAbort(i));
            }
            if commit {
                out.push(Step::RmRcvCommit(i));
            }
            if abort {
                out.push(Step::RmRcvAbort(i));
            }
        }
    }

    fn next_state(&self, s: &State, a: Step) -> Option<State> {
        let mut n = s.clone();
        match a {
            Step::TmRcvPrepared(i) => n.tm_prepared[i] = true,
            Step::TmCommit => {
                n.tm = Tm::Committed;
                n.msgs.insert(Msg::Commit);
            }
            Step::TmAbort => {
                n.tm = Tm::Aborted;
                n.msgs.insert(Msg::Abort);
            }
            Step::RmPrepare(i) => {
                n.rm[i] = Rm::Prepared;
                n.msgs.insert(Msg::Prepared(i));
            }
            Step::RmChooseToAbort(i) | Step::RmRcvAbort(i) => n.rm[i] = Rm::Aborted,
            Step::RmRcvCommit(i) => n.rm[i] = Rm::Committed,
        }
        Some(n)
    }

    fn properties(&self) -> Vec<Property<Self>> {
        vec![
            Property::sometimes("abort agreement", |_, s: &State| {
                s.rm.iter().all(|&r| r == Rm::Aborted)
            }),
            Property::sometimes("commit agreement", |_, s: &State| {
                s.rm.iter().all(|&r| r == Rm::Committed)
            }),
            Property::always("consistent", |_, s: &State| {
                !(s.rm.contains(&Rm::Aborted) && s.rm.contains(&Rm::Committed))
            }),
        ]
    }
}

impl Fairness for TwoPc {
    /// No `eventually` property: fairness is never asked for.
    fn fair_class(&self, _: &State, _: &Step) -> Option<u64> {
        None
    }

    fn codec(&self) -> Box<dyn Codec<State>> {
        Box::new(Bits { rms: self.rms })
    }
}

/// Packs a state into bits: per resource manager its state (2 bits), whether the manager
/// has its `Prepared` and whether `Prepared(i)` was sent (1 bit each), then the manager's
/// state (2 bits) and whether `Commit` and `Abort` were sent.
struct Bits {
    rms: usize,
}

impl Bits {
    fn put(out: &mut Vec<u32>, base: usize, bit: usize, v: u32) {
        let (w, b) = (base + bit / 32, bit % 32);
        if out.len() <= w {
            out.resize(w + 1, 0);
        }
        out[w] |= v << b;
    }

    fn get(words: &[u32], bit: usize, width: u32) -> u32 {
        (words[bit / 32] >> (bit % 32)) & ((1 << width) - 1)
    }
}

impl Codec<State> for Bits {
    fn pack(&mut self, s: State, _: &[u64], out: &mut Vec<u32>) {
        let base = out.len();
        // Fields of 2 bits start at even positions, so none straddles a word.
        let mut bit = 0;
        for i in 0..self.rms {
            Self::put(out, base, bit, s.rm[i] as u32);
            Self::put(out, base, bit + 2, s.tm_prepared[i] as u32);
            Self::put(
                out,
                base,
                bit + 3,
                s.msgs.contains(&Msg::Prepared(i)) as u32,
            );
            bit += 4;
        }
        Self::put(out, base, bit, s.tm as u32);
        Self::put(out, base, bit + 2, s.msgs.contains(&Msg::Commit) as u32);
        Self::put(out, base, bit + 3, s.msgs.contains(&Msg::Abort) as u32);
    }

    fn unpack(&self, w: &[u32]) -> State {
        let rm_of = |v| match v {
            0 => Rm::Working,
            1 => Rm::Prepared,
            2 => Rm::Committed,
            _ => Rm::Aborted,
        };
        let mut msgs = BTreeSet::new();
        let mut rm = Vec::with_capacity(self.rms);
        let mut tm_prepared = Vec::with_capacity(self.rms);
        let mut bit = 0;
        for i in 0..self.rms {
            rm.push(rm_of(Self::get(w, bit, 2)));
            tm_prepared.push(Self::get(w, bit + 2, 1) == 1);
            if Self::get(w, bit + 3, 1) == 1 {
                msgs.insert(Msg::Prepared(i));
            }
            bit += 4;
        }
        let tm = match Self::get(w, bit, 2) {
            0 => Tm::Init,
            1 => Tm::Committed,
            _ => Tm::Aborted,
        };
        if Self::get(w, bit + 2, 1) == 1 {
            msgs.insert(Msg::Commit);
        }
        if Self::get(w, bit + 3, 1) == 1 {
            msgs.insert(Msg::Abort);
        }
        State {
            rm,
            tm,
            tm_prepared,
            msgs,
        }
    }

    fn bytes(&self) -> usize {
        0
    }
}
