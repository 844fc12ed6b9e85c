//! The workload: many clients of the real client library doing put/get/delete on
//! per-key registers with unique values, each call recorded (invocation, completion or
//! unknown outcome) both in the harness's own history and, through the library, in the
//! cluster's `client-history.jsonl` that `petrel-check validate` reads.
use super::nemesis::Rng;
use super::verdict::{Act, End, Op};
use crate::client::{Client, History};
use crate::config::Config;
use petrel_core::{ClientOp, OpResult};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared record of a campaign's operations.
pub struct Recorder {
    start: Instant,
    pub ops: Mutex<Vec<Op>>,
}

impl Recorder {
    pub fn new() -> Arc<Recorder> {
        Arc::new(Recorder {
            start: Instant::now(),
            ops: Mutex::new(Vec::new()),
        })
    }
    fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    pub fn take(&self) -> Vec<Op> {
        self.ops.lock().map(|o| o.clone()).unwrap_or_default()
    }
}

/// The key names of a campaign.
pub fn keys(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("k{i}")).collect()
}

/// One call, recorded.
pub async fn call(
    rec: &Recorder,
    client: &Client,
    who: usize,
    key: &str,
    act: Act,
    deadline: Duration,
    final_read: bool,
) -> End {
    let op = match &act {
        Act::Put(v) => ClientOp::put(key, v.as_str()),
        Act::Del => ClientOp::del(key),
        Act::Get => ClientOp::get(key),
    };
    let invoke_us = rec.now_us();
    let r = client.call(op, deadline).await;
    let t = rec.now_us();
    let end = match r {
        Ok(OpResult::WriteOk) if act != Act::Get => End::Written(t),
        Ok(OpResult::ReadOk(v)) if act == Act::Get => End::Read(t, v.map(|v| v.to_text())),
        Ok(other) => End::Unknown(format!("unexpected result {other:?}")),
        Err(e) => End::Unknown(e.to_string()),
    };
    if let Ok(mut ops) = rec.ops.lock() {
        ops.push(Op {
            client: who,
            key: key.to_string(),
            act,
            invoke_us,
            end: end.clone(),
            final_read,
        });
    }
    end
}

/// Connect a recording client, retrying (bounded by `limit`).
pub async fn connect(cfg: &Config, history: &Arc<History>, limit: Duration) -> Option<Client> {
    let until = Instant::now() + limit;
    loop {
        let mut c = cfg.clone();
        c.client.deadline_ms = Some(2000);
        if let Ok(mut client) = Client::connect(&c).await {
            client.record_history(history.clone());
            return Some(client);
        }
        if Instant::now() > until {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

pub struct Plan {
    pub seed: u64,
    pub clients: usize,
    pub keys: usize,
    pub duration: Duration,
    /// One call's deadline (retries included).
    pub op_deadline: Duration,
}

/// Run `clients` already connected clients for `plan.duration` (or until `stop`).
pub async fn run(plan: &Plan, clients: Vec<Client>, rec: Arc<Recorder>, stop: &'static AtomicBool) {
    let keys = keys(plan.keys);
    let until = Instant::now() + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for (who, client) in clients.into_iter().enumerate() {
        let keys = keys.clone();
        let rec = rec.clone();
        let seed = plan.seed;
        let deadline = plan.op_deadline;
        tasks.spawn(async move {
            let mut rng = Rng::new(seed.wrapping_mul(1000).wrapping_add(who as u64 + 1));
            let mut n = 0u64;
            while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                let key = &keys[rng.below(keys.len() as u64) as usize];
                // A quarter of the clients only read (and keep the route of whoever
                // answered them: where stale reads show).
                let reader = who % 4 == 3;
                let roll = if reader { 60 } else { rng.below(100) };
                let act = if roll < 50 {
                    n += 1;
                    Act::Put(format!("s{seed}c{who}n{n}"))
                } else if roll < 88 {
                    Act::Get
                } else {
                    Act::Del
                };
                call(&rec, &client, who, key, act, deadline, false).await;
                tokio::time::sleep(Duration::from_millis(5 + rng.below(20))).await;
            }
            client.close().await;
        });
    }
    while tasks.join_next().await.is_some() {}
}
