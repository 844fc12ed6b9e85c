//! Hosting one core actor: the event loop that turns the actor's `Out` into effects.
//!
//! The loop takes one event (an inbound message, a `PeerDown`, a due timer), then up to
//! [`MAX_BATCH`] more that are already waiting, and calls `on_msg` / `on_timeout` for each
//! in order with the state held as a `Cow` (an unchanged state is never copied). Then, for
//! the whole batch, strictly in this order:
//!
//! 1. **saves** — the last `Save` of the batch is written and fsynced (each `Save` is the
//!    whole durable value, so the last one subsumes the others: group commit, one fsync
//!    per batch instead of one per message);
//! 2. **timers** — already applied right after each handler (they are volatile, so
//!    applying them before the save is indistinguishable from after, and a timer cancelled
//!    by an earlier event of the batch must not fire in a later one);
//! 3. **sends** — handed to the transport, in the order the handlers produced them.
//!
//! So no message leaves before the state it depends on is durable ("persist before the
//! messages that depend on it are sent"). The event log (`eventlog.rs`) records each
//! event with the commands it produced, then a `durable` line after the fsync and a
//! `sent` line after the sends, so `petrel-check validate` can replay the run and check
//! this order; the batch's event lines are handed to the OS before the fsync and before
//! the sends, so a killed process leaves no effect in the world that its log lacks. A crash before the fsync loses the batch's
//! effects and its sends together, which is the same as the crash happening before those
//! events were delivered. A storage error stops the node (fail-stop): continuing would
//! send messages the disk does not back.
//!
//! Timers: `SetTimer(t, range)` arms `t` at `now + range.start`, replacing an armed timer
//! of the same value; `CancelTimer(t)` disarms it. The core's timers are abstract ("fires
//! at any time after it is set"), so the earliest allowed time is the natural choice.
use crate::eventlog::{value_hash, Event, EventLog, Start, FORMAT};
use crate::metrics::Metrics;
use crate::storage::Store;
use crate::transport::{raw_of, Transport};
use anyhow::{Context, Result};
use petrel_core::replica::ReplicaState;
use petrel_core::{Msg, Node, NodeState, NodeStorage, Timer};
use stateright::actor::{Actor, Command, Id, Out};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Events handled per turn before the group commit.
pub const MAX_BATCH: usize = 64;
/// Capacity of the inbound queue; a full queue backpressures the readers (and so, through
/// QUIC flow control, the senders).
pub const INBOUND_CAPACITY: usize = 4096;

/// Why the loop ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// `stop_when` held (a one-shot client finished).
    Done,
    /// The shutdown signal fired.
    Shutdown,
}

pub struct Host {
    actor: Node,
    id: Id,
    state: NodeState,
    store: Option<Store<NodeStorage>>,
    pub transport: Transport,
    inbound: mpsc::Receiver<(Id, Msg)>,
    events: Option<EventLog>,
    timers: BTreeMap<Timer, Instant>,
    /// The life the transport announces (a node may start a new one in-process).
    announced: u32,
    /// Durable saves so far.
    pub saves: u64,
    /// Events handled so far.
    pub handled: u64,
    /// Observes requests, replies and (after every turn) the state; decides nothing.
    metrics: Option<Arc<Metrics>>,
    /// Test only (`PETREL_TEST_SEND_BEFORE_SAVE=1`): hand the sends to the transport
    /// *before* the fsync — the driver bug that trace validation must catch. Never set in
    /// a deployment; the node warns at start when it is.
    send_before_save: bool,
}

/// The environment variable that switches on [`Host`]'s deliberate send-before-save bug.
pub const SEND_BEFORE_SAVE_ENV: &str = "PETREL_TEST_SEND_BEFORE_SAVE";
/// Test only: the name of a core mutant (`petrel_core::Bug`, e.g. `LearnSkipsCheckpoint`)
/// to switch on in a meta or replica server, so a test can show that validating a real
/// run catches it. The start line of the event log records the actor with its bugs, so
/// the replay runs the same mutant and the *properties* must catch it.
pub const TEST_BUG_ENV: &str = "PETREL_TEST_BUG";

/// The actor with the mutant named by [`TEST_BUG_ENV`] switched on (unchanged if unset).
fn with_test_bug(actor: Node) -> Result<Node> {
    let Some(name) = std::env::var_os(TEST_BUG_ENV) else {
        return Ok(actor);
    };
    let name = name.to_string_lossy().into_owned();
    let bug: petrel_core::Bug = serde_json::from_value(serde_json::Value::String(name.clone()))
        .with_context(|| format!("{TEST_BUG_ENV}={name} names no petrel_core::Bug"))?;
    tracing::warn!("{TEST_BUG_ENV}={name}: this node runs a deliberately wrong transition (a test-only mutant)");
    Ok(match actor {
        Node::Meta(mut c) => {
            c.bugs = c.bugs.with(bug);
            Node::Meta(c)
        }
        Node::Replica(mut c) => {
            c.bugs = c.bugs.with(bug);
            Node::Replica(c)
        }
        client => client,
    })
}

enum Ev {
    Msg(Id, Msg),
    Timers,
}

impl Host {
    /// Boot the actor: load what the store holds, call `on_start`, bring up the transport
    /// (which announces the incarnation `on_start` chose), then execute the start's output.
    pub async fn start(
        actor: Node,
        id: Id,
        store: Option<(Store<NodeStorage>, Option<NodeStorage>)>,
        events: Option<EventLog>,
        transport: impl FnOnce(u32, mpsc::Sender<(Id, Msg)>) -> Result<Transport>,
    ) -> Result<Host> {
        let (store, stored) = match store {
            Some((s, v)) => (Some(s), v),
            None => (None, None),
        };
        let actor = with_test_bug(actor)?;
        let storage_hash = match (&events, &stored) {
            (Some(_), Some(v)) => Some(value_hash(v)),
            _ => None,
        };
        let mut out = Out::new();
        let state = actor.on_start(id, &stored, &mut out);
        let (tx, rx) = mpsc::channel(INBOUND_CAPACITY);
        let life = state.incarnation();
        let transport = transport(life, tx)?;
        let mut host = Host {
            actor,
            id,
            state,
            store,
            transport,
            inbound: rx,
            events,
            timers: BTreeMap::new(),
            announced: life,
            saves: 0,
            handled: 0,
            metrics: None,
            send_before_save: std::env::var_os(SEND_BEFORE_SAVE_ENV).is_some_and(|v| v == "1"),
        };
        if host.send_before_save {
            tracing::warn!("{SEND_BEFORE_SAVE_ENV}=1: sends leave before the state is durable (a test-only bug)");
        }
        tracing::info!(
            id = raw_of(id),
            incarnation = host.state.incarnation(),
            restored = stored.is_some(),
            "actor started"
        );
        let unix_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0);
        let start = Start {
            format: FORMAT,
            id: raw_of(id),
            actor: &host.actor,
            storage: stored.is_some(),
            storage_hash,
            incarnation: host.state.incarnation(),
            unix_ms,
            pid: std::process::id(),
        };
        if let Some(log) = &mut host.events {
            if let Err(e) = log.record(Event::Start(start), &out) {
                tracing::warn!("event log write failed ({e}); event logging disabled");
                host.events = None;
            }
        }
        host.apply_timers(&out);
        host.execute(vec![out]).await?;
        Ok(host)
    }

    pub fn state(&self) -> &NodeState {
        &self.state
    }

    /// Feed `metrics` from now on (and read the current state into it at once).
    pub fn set_metrics(&mut self, metrics: Arc<Metrics>) {
        metrics.on_turn(&self.state, self.handled, self.saves);
        self.metrics = Some(metrics);
    }

    /// Handle events until `shutdown` completes or `stop_when` holds for the state.
    pub async fn run(
        &mut self,
        shutdown: impl Future<Output = ()>,
        stop_when: impl Fn(&NodeState) -> bool,
    ) -> Result<Exit> {
        tokio::pin!(shutdown);
        loop {
            if stop_when(&self.state) {
                return Ok(Exit::Done);
            }
            let next_timer = self.timers.values().min().copied();
            let first = tokio::select! {
                biased;
                _ = &mut shutdown => return Ok(Exit::Shutdown),
                m = self.inbound.recv() => match m {
                    Some((src, msg)) => Ev::Msg(src, msg),
                    None => return Ok(Exit::Shutdown),
                },
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => Ev::Timers,
            };
            let mut outs = Vec::new();
            // Due timers go before any message: a lease that has expired must lapse before
            // a request is served, and an acknowledgement handled after its beacon's
            // window closed must find the window closed (SPEC.md, "Timing").
            self.handle_due(&mut outs);
            self.handle(first, &mut outs);
            while outs.len() < MAX_BATCH {
                match self.inbound.try_recv() {
                    Ok((src, msg)) => {
                        self.handle_due(&mut outs);
                        self.handle(Ev::Msg(src, msg), &mut outs)
                    }
                    Err(_) => break,
                }
            }
            self.execute(outs).await?;
        }
    }

    /// Fire the timers that are due now, if any.
    fn handle_due(&mut self, outs: &mut Vec<Out<Node>>) {
        let now = Instant::now();
        if self.timers.values().any(|at| *at <= now) {
            self.handle(Ev::Timers, outs);
        }
    }

    fn handle(&mut self, ev: Ev, outs: &mut Vec<Out<Node>>) {
        match ev {
            Ev::Msg(src, msg) => {
                self.handled += 1;
                if let Some(m) = &self.metrics {
                    m.on_receive(src, &msg);
                }
                self.note_unauthorized(src, &msg);
                let logged = self.events.is_some().then(|| msg.clone());
                let mut out = Out::new();
                let mut state = self.lend_state();
                self.actor.on_msg(self.id, &mut state, src, msg, &mut out);
                self.state = state.into_owned();
                if let Some(m) = &logged {
                    self.log(
                        Event::Msg {
                            src: raw_of(src),
                            msg: m,
                        },
                        &out,
                    );
                }
                self.apply_timers(&out);
                outs.push(out);
            }
            Ev::Timers => {
                let now = Instant::now();
                let mut due: Vec<(Instant, Timer)> = self
                    .timers
                    .iter()
                    .filter(|(_, at)| **at <= now)
                    .map(|(t, at)| (*at, t.clone()))
                    .collect();
                due.sort();
                for (_, timer) in due {
                    // An earlier timer's handler may have cancelled or re-armed this one.
                    if self.timers.get(&timer).is_none_or(|at| *at > now) {
                        continue;
                    }
                    self.timers.remove(&timer);
                    self.handled += 1;
                    let mut out = Out::new();
                    let mut state = self.lend_state();
                    self.actor.on_timeout(self.id, &mut state, &timer, &mut out);
                    self.state = state.into_owned();
                    self.log(Event::Timer(&timer), &out);
                    self.apply_timers(&out);
                    outs.push(out);
                }
            }
        }
    }

    /// A message its sender's role may not send (the core's authorization table): the
    /// core ignores it; the node says so, counted as `forbidden`, so that a forgery (or a
    /// misconfigured peer) is visible. Observation only: the core still decides.
    fn note_unauthorized(&self, src: Id, msg: &Msg) {
        let dir = match &self.actor {
            Node::Meta(c) => &c.dir,
            Node::Replica(c) => &c.dir,
            Node::Client(_) => return,
        };
        let role = dir.role(src);
        if !petrel_core::auth::may_send(role, msg) {
            self.transport.stats().count_forbidden();
            tracing::warn!(
                peer = raw_of(src),
                "refused {} from node {} ({role:?}): its role may not send it (SPEC.md, Authorization)",
                msg.kind(),
                raw_of(src)
            );
        }
    }

    /// The state for a handler, moved out (the caller puts it back): a borrowed `Cow`
    /// would be cloned whole by the first change, a copy of every key on every event.
    fn lend_state(&mut self) -> Cow<'static, NodeState> {
        let placeholder = NodeState::Replica(ReplicaState {
            incarnation: 0,
            parts: Default::default(),
            broken: None,
            lease: Default::default(),
        });
        Cow::Owned(std::mem::replace(&mut self.state, placeholder))
    }

    fn apply_timers(&mut self, out: &Out<Node>) {
        for c in out.iter() {
            match c {
                Command::SetTimer(t, range) => {
                    self.timers.insert(t.clone(), Instant::now() + range.start);
                }
                Command::CancelTimer(t) => {
                    self.timers.remove(t);
                }
                _ => {}
            }
        }
    }

    fn log(&mut self, event: Event<'_>, out: &Out<Node>) {
        if let Some(log) = &mut self.events {
            if let Err(e) = log.record(event, out) {
                tracing::warn!("event log write failed ({e}); event logging disabled");
                self.events = None;
            }
        }
    }

    /// Group commit, then sends (timers were applied per handler). With an event log:
    /// the batch's event lines go to the OS before the fsync, a `durable` line after it,
    /// a `sent` line after the sends (see `eventlog`).
    async fn execute(&mut self, outs: Vec<Out<Node>>) -> Result<()> {
        let mut last_save = None;
        let mut sends = Vec::new();
        for out in outs {
            for c in out {
                match c {
                    Command::Save(s) => last_save = Some(s),
                    Command::Send(dst, msg) => sends.push((dst, msg)),
                    Command::SetTimer(..) | Command::CancelTimer(_) => {}
                    Command::ChooseRandom(key, _) => tracing::warn!(
                        key,
                        "the core asked for a random choice; the node makes none"
                    ),
                }
            }
        }
        if self.send_before_save {
            self.send_all(std::mem::take(&mut sends));
        }
        if let Some(value) = last_save {
            self.save(value).await?;
        }
        self.send_all(sends);
        if let Some(m) = &self.metrics {
            m.on_turn(&self.state, self.handled, self.saves);
        }
        // No flush here: the lines a save or a send depends on were flushed before it;
        // what is left (the `sent` line, events without effects) goes with the next
        // batch's flush or at stop — a kill -9 loses nothing the world saw.
        Ok(())
    }

    async fn save(&mut self, value: NodeStorage) -> Result<()> {
        let Some(mut store) = self.store.take() else {
            tracing::debug!("save without a store (a client): ignored");
            return Ok(());
        };
        // The hash is what the validator compares with the replayed save; the events that
        // produced the value reach the OS first, so a kill -9 after the fsync keeps them.
        let hash = self.events.is_some().then(|| value_hash(&value));
        if let Some(log) = &mut self.events {
            if let Err(e) = log.flush() {
                tracing::warn!("event log flush failed: {e}");
            }
        }
        // fsync blocks: keep it off the async workers.
        let (store, r) = tokio::task::spawn_blocking(move || {
            let r = store.save(value);
            (store, r)
        })
        .await
        .context("storage task failed")?;
        self.store = Some(store);
        r.context("cannot make the actor's state durable; stopping (fail-stop)")?;
        self.saves += 1;
        if let (Some(log), Some(hash)) = (&mut self.events, hash) {
            if let Err(e) = log.durable(&hash) {
                tracing::warn!("event log write failed ({e}); event logging disabled");
                self.events = None;
            }
        }
        Ok(())
    }

    fn send_all(&mut self, sends: Vec<(Id, Msg)>) {
        if sends.is_empty() {
            return;
        }
        let count = sends.len();
        // The events that produced these sends reach the log first: a receiver's log
        // may show the delivery even if this process dies right after sending.
        if let Some(log) = &mut self.events {
            if let Err(e) = log.flush() {
                tracing::warn!("event log flush failed: {e}");
            }
        }
        let life = self.state.incarnation();
        if self.store.is_some() && life != self.announced {
            // A new life (the meta server assigned one, or declared the old one dead) is
            // durable now (the save above): announce it before its first send.
            if let Err(e) = self.transport.set_incarnation(life) {
                tracing::warn!("cannot announce life {life}: {e}");
            }
            self.announced = life;
        }
        for (dst, msg) in sends {
            if let Some(m) = &self.metrics {
                m.on_send(dst, &msg);
            }
            // The core refuses a duplication write it may not take with a reasoned reply;
            // the node also logs it (a forgery or a misconfigured partner shows here).
            if let Msg::ApplyReply {
                gpid,
                decree,
                result: Err(Some(why)),
            } = &msg
            {
                tracing::warn!(
                    peer = raw_of(dst),
                    "refused a duplication write from node {} into {}.{} (decree {decree}): {why}",
                    raw_of(dst),
                    gpid.table,
                    gpid.partition
                );
            }
            self.transport.send(dst, msg);
        }
        if let Some(log) = &mut self.events {
            if let Err(e) = log.sent(count) {
                tracing::warn!("event log write failed ({e}); event logging disabled");
                self.events = None;
            }
        }
    }

    /// Close the transport (peers see a clean close) and flush the event log.
    pub async fn stop(&mut self) {
        self.transport.shutdown().await;
        if let Some(log) = &mut self.events {
            let _ = log.flush();
        }
    }
}
