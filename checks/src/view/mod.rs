//! The counterexample viewer: a small loopback-only HTTP server that shows one
//! `petrel-trace/1` counterexample (see `docs/trace-format.md`) as swimlanes with a
//! step inspector, structural state diffs, lasso marking, filters and search.
//!
//! The page is vanilla HTML/JS/SVG embedded in the binary (`assets/`); it makes no
//! network request other than to this server, and the trace itself is inlined into
//! the page so the first render needs no extra round trip.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use serde_json::{json, Map, Value};

pub use crate::trace::SCHEMA;
use crate::trace::{Actor, Property, PropertyKind, Schema, Send, States, Step, StepKind, Trace};

const INDEX_HTML: &str = include_str!("assets/index.html");
const VIEWER_JS: &str = include_str!("assets/viewer.js");
const VIEWER_CSS: &str = include_str!("assets/viewer.css");

/// Placeholder in `index.html` replaced by the page configuration (trace + explorer base).
const DATA_PLACEHOLDER: &str = "{{PETREL_DATA}}";
/// Placeholder in `index.html` replaced by the (HTML-escaped) page title.
const TITLE_PLACEHOLDER: &str = "{{PETREL_TITLE}}";

/// A running viewer. The HTTP server runs on a background thread until [`ViewServer::stop`]
/// is called (or forever, for [`ViewServer::join`]).
pub struct ViewServer {
    addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    thread: Option<JoinHandle<()>>,
}

impl ViewServer {
    /// The page's URL, e.g. `http://127.0.0.1:41234/`.
    pub fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// The address actually bound (useful when serving on port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Block until the server thread ends (it only ends when stopped from elsewhere, so
    /// in practice this serves until the process is killed).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// Stop serving and wait for the server thread to finish.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        if let Some(t) = self.thread.take() {
            self.server.unblock();
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for ViewServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewServer")
            .field("addr", &self.addr)
            .field("running", &self.thread.is_some())
            .finish()
    }
}

impl Drop for ViewServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Serve the viewer for one trace (JSON text in `petrel-trace/1`) on `addr`, which must be
/// a loopback address (127.0.0.0/8 or ::1); anything else is refused. `explorer_base`, e.g.
/// `Some("http://127.0.0.1:3001")`, makes the page link every step to the stateright
/// Explorer at `{explorer_base}/{explorer_path prefix up to that step}`.
pub fn serve(
    trace_json: String,
    addr: SocketAddr,
    explorer_base: Option<String>,
) -> Result<ViewServer, String> {
    if !addr.ip().is_loopback() {
        return Err(format!(
            "refusing to serve the viewer on {addr}: only loopback addresses \
             (127.0.0.0/8 or [::1]) are allowed, the viewer has no authentication"
        ));
    }
    let trace = Trace::parse(&trace_json)?;
    if let Some(base) = &explorer_base {
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(format!(
                "explorer base URL must start with http:// or https://, got {base:?}"
            ));
        }
    }
    let page = render_index(&trace, &trace_json, explorer_base.as_deref());
    let download_name = download_file_name(&trace);

    let server = tiny_http::Server::http(addr)
        .map_err(|e| format!("cannot listen on {addr} for the viewer: {e}"))?;
    let bound = server
        .server_addr()
        .to_ip()
        .ok_or_else(|| "viewer server is not bound to an IP address".to_string())?;
    let server = Arc::new(server);
    let routes = Routes {
        page,
        trace: trace_json,
        download_name,
    };
    let srv = Arc::clone(&server);
    let thread = std::thread::Builder::new()
        .name("petrel-view".into())
        .spawn(move || {
            // `incoming_requests` ends when `unblock` is called.
            for request in srv.incoming_requests() {
                routes.handle(request);
            }
        })
        .map_err(|e| format!("cannot start the viewer thread: {e}"))?;
    Ok(ViewServer {
        addr: bound,
        server,
        thread: Some(thread),
    })
}

struct Routes {
    page: String,
    trace: String,
    download_name: String,
}

impl Routes {
    fn handle(&self, request: tiny_http::Request) {
        use tiny_http::Method;
        let method = request.method().clone();
        if method != Method::Get && method != Method::Head {
            let _ = request.respond(text_response(405, "method not allowed\n"));
            return;
        }
        if !host_is_loopback(&request) {
            let _ = request.respond(text_response(
                403,
                "forbidden: the viewer only answers requests addressed to a loopback host\n",
            ));
            return;
        }
        let url = request.url().to_string();
        let (path, query) = match url.split_once('?') {
            Some((p, q)) => (p, q),
            None => (url.as_str(), ""),
        };
        let response = match path {
            "/" | "/index.html" => body_response(self.page.as_bytes(), "text/html; charset=utf-8"),
            "/viewer.js" => body_response(VIEWER_JS.as_bytes(), "text/javascript; charset=utf-8"),
            "/viewer.css" => body_response(VIEWER_CSS.as_bytes(), "text/css; charset=utf-8"),
            "/trace.json" => {
                let r = body_response(self.trace.as_bytes(), "application/json; charset=utf-8");
                if query.split('&').any(|kv| kv == "download=1") {
                    r.with_header(header(
                        "Content-Disposition",
                        &format!("attachment; filename=\"{}\"", self.download_name),
                    ))
                } else {
                    r
                }
            }
            _ => text_response(404, "not found\n"),
        };
        let _ = request.respond(response);
    }
}

fn header(name: &str, value: &str) -> tiny_http::Header {
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes())
        .expect("static header names and ASCII values are valid")
}

fn common_headers(
    r: tiny_http::Response<std::io::Cursor<Vec<u8>>>,
) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    r.with_header(header("Cache-Control", "no-store"))
        .with_header(header("X-Content-Type-Options", "nosniff"))
        .with_header(header("Referrer-Policy", "no-referrer"))
        .with_header(header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'",
        ))
}

fn body_response(body: &[u8], content_type: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    common_headers(
        tiny_http::Response::from_data(body.to_vec())
            // Always send a Content-Length rather than chunking large bodies.
            .with_chunked_threshold(usize::MAX)
            .with_header(header("Content-Type", content_type)),
    )
}

fn text_response(status: u16, body: &str) -> tiny_http::Response<std::io::Cursor<Vec<u8>>> {
    body_response(body.as_bytes(), "text/plain; charset=utf-8").with_status_code(status)
}

/// Guard against DNS rebinding: only answer requests whose Host names a loopback host.
fn host_is_loopback(request: &tiny_http::Request) -> bool {
    let Some(host) = request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Host"))
        .map(|h| h.value.as_str().to_ascii_lowercase())
    else {
        // HTTP/1.0 clients may omit Host; the socket is loopback-only anyway.
        return true;
    };
    let name = if let Some(rest) = host.strip_prefix('[') {
        // [::1]:port
        match rest.split_once(']') {
            Some((ip, _)) => ip.to_string(),
            None => return false,
        }
    } else {
        host.rsplit_once(':')
            .map(|(h, _)| h.to_string())
            .unwrap_or(host.clone())
    };
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    name.parse::<std::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

/// The page, with the trace inlined as a JSON data block. `trace_json` is the validated
/// text of `trace`, embedded as is (no re-serialisation of a possibly large document).
fn render_index(trace: &Trace, trace_json: &str, explorer_base: Option<&str>) -> String {
    let base = Value::from(explorer_base.map(|b| b.trim_end_matches('/')));
    // `<` only occurs inside JSON strings, where `\u003c` is an equivalent escape; this keeps
    // `</script>` and `<!--` in labels or states from ending the data block early.
    let data = format!(
        "{{\"explorer_base\":{base},\"trace\":{}}}",
        trace_json.trim()
    )
    .replace('<', "\\u003c");
    let title = format!(
        "{} · {} — Petrel counterexample",
        trace.scenario, trace.property.id
    );
    // Substitute each placeholder exactly once, so text inside the trace can never be
    // mistaken for a placeholder.
    let (head, rest) = INDEX_HTML
        .split_once(TITLE_PLACEHOLDER)
        .expect("index.html has a title placeholder");
    let (middle, tail) = rest
        .split_once(DATA_PLACEHOLDER)
        .expect("index.html has a data placeholder");
    let title = html_escape(&title);
    let mut page = String::with_capacity(INDEX_HTML.len() + title.len() + data.len());
    page.push_str(head);
    page.push_str(&title);
    page.push_str(middle);
    page.push_str(&data);
    page.push_str(tail);
    page
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn download_file_name(trace: &Trace) -> String {
    let mut name = trace.scenario.clone();
    if let Some(m) = &trace.mutant {
        name.push_str("--");
        name.push_str(m);
    }
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{clean}.trace.json")
}

// ---------------------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------------------

/// Check that `trace_json` is a well-formed `petrel-trace/1` document. The error names the
/// offending field by its JSON path, e.g. `steps[3].actor: 12 is not an actor id (the trace
/// has 4 actors)`.
pub fn validate(trace_json: &str) -> Result<(), String> {
    Trace::parse(trace_json).map(drop)
}

// ---------------------------------------------------------------------------------------
// Synthetic traces (for tests and demos)
// ---------------------------------------------------------------------------------------

/// Small deterministic PRNG (SplitMix64), so synthetic traces are identical run to run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

struct SynthActor {
    name: String,
    role: &'static str,
    cluster: String,
}

fn synth_actors(n: usize) -> Vec<SynthActor> {
    let mut out = Vec::with_capacity(n);
    let clusters = ["A", "B", "C", "D"];
    for i in 0..n {
        if i == 0 {
            out.push(SynthActor {
                name: "meta-A".into(),
                role: "meta",
                cluster: "A".into(),
            });
        } else if i == n - 1 && n >= 4 {
            out.push(SynthActor {
                name: "client-1".into(),
                role: "client",
                cluster: "A".into(),
            });
        } else {
            let c = clusters[((i - 1) / 4) % clusters.len()];
            let k = (i - 1) % 4 + 1;
            out.push(SynthActor {
                name: format!("replica-{c}{k}"),
                role: "replica",
                cluster: c.into(),
            });
        }
    }
    out
}

fn synth_state(a: &SynthActor, i: usize, n: usize) -> Value {
    match a.role {
        "meta" => json!({
            "role": "meta",
            "epoch": 1,
            "config": {
                "ballot": { "round": 1, "leader": 1.min(n - 1) },
                "members": (1..n).map(|k| k as u64).collect::<Vec<_>>(),
                "primary": if n > 1 { Value::from(1) } else { Value::Null },
            },
            "pending_updates": [],
            "failure_reports": {},
        }),
        "client" => json!({
            "role": "client",
            "next_request": 1,
            "outstanding": {},
            "acked": [],
        }),
        _ => {
            let mut peers = Map::new();
            for j in 1..n {
                if j != i {
                    peers.insert(
                        format!("r{j}"),
                        json!({ "match_index": 0, "last_heard": 0 }),
                    );
                }
            }
            json!({
                "role": "replica",
                "status": "follower",
                "cluster": a.cluster,
                "ballot": { "round": 1, "leader": 1 },
                "promised": { "round": 1, "leader": 1 },
                "log": {},
                "commit_index": 0,
                "checkpoint": { "min": 0, "applied": 0 },
                "peers": peers,
                "timers": { "election": "armed", "heartbeat": "idle" },
            })
        }
    }
}

const DECREES: [&str; 6] = [
    "put x=1",
    "put y=7",
    "del x",
    "put ballot=3",
    "cas y 7->8",
    "noop",
];

/// A deterministic, realistic-looking `petrel-trace/1` counterexample with `steps` steps and
/// `actors` actors (at least 1). With `loop_start = Some(k)` (1-based, clamped to the trace)
/// it is a liveness lasso whose last step returns the system to the state before step `k`.
pub fn synthetic_trace(steps: usize, actors: usize, loop_start: Option<usize>) -> String {
    let n = actors.max(1);
    let loop_start = loop_start.filter(|_| steps > 0).map(|k| k.clamp(1, steps));
    let cast = synth_actors(n);
    let mut rng = Rng(0x5EED_0000_0000_0000 ^ ((steps as u64) << 16) ^ n as u64);
    let mut states: Vec<Value> = cast
        .iter()
        .enumerate()
        .map(|(i, a)| synth_state(a, i, n))
        .collect();
    let mut crashed = vec![false; n];
    let initial = States {
        actors: states.clone(),
        crashed: crashed.clone(),
    };

    let mut out_steps = Vec::with_capacity(steps);
    let mut explorer = vec![0usize];
    let mut loop_snapshot: Option<(Vec<Value>, Vec<bool>)> = None;
    let mut tick: u64 = 0;
    let mut in_flight: Vec<InFlight> = Vec::new();
    let msg_kinds = [
        "Prepare",
        "Promise",
        "Accept",
        "Accepted",
        "Commit",
        "ConfigUpdate",
        "Heartbeat",
    ];

    for idx in 1..=steps {
        if Some(idx) == loop_start {
            loop_snapshot = Some((states.clone(), crashed.clone()));
        }
        tick += 1;
        let is_last_of_loop = loop_start.is_some() && idx == steps;
        let mut actor = rng.below(n);
        let roll = rng.below(100);
        let mut kind = if n == 1 {
            StepKind::Timeout
        } else if roll < 62 {
            StepKind::Deliver
        } else if roll < 80 {
            StepKind::Timeout
        } else if roll < 86 {
            StepKind::Drop
        } else if roll < 92 {
            StepKind::Env
        } else if roll < 96 {
            StepKind::Crash
        } else {
            StepKind::Recover
        };
        if kind == StepKind::Crash && crashed[actor] {
            kind = StepKind::Recover;
        } else if kind == StepKind::Recover && !crashed[actor] {
            kind = StepKind::Timeout;
        }
        if crashed[actor] && (kind == StepKind::Deliver || kind == StepKind::Timeout) {
            kind = StepKind::Recover;
        }
        let mut src = if kind == StepKind::Deliver || kind == StepKind::Drop {
            // A live sender other than the receiver (the receiver itself if none is up).
            let start = rng.below(n);
            let s = (0..n)
                .map(|k| (start + k) % n)
                .find(|&s| s != actor && !crashed[s])
                .unwrap_or((actor + 1) % n);
            Some(s)
        } else {
            None
        };
        // Mostly deliver (or lose) a message that is actually in flight, oldest first-ish.
        let mut picked: Option<InFlight> = None;
        if (kind == StepKind::Deliver || kind == StepKind::Drop) && rng.chance(80) {
            let candidates: Vec<usize> = in_flight
                .iter()
                .enumerate()
                .filter(|(_, m)| !crashed[m.dst])
                .map(|(k, _)| k)
                .take(3)
                .collect();
            if !candidates.is_empty() {
                let m = in_flight.remove(candidates[rng.below(candidates.len())]);
                actor = m.dst;
                src = Some(m.src);
                picked = Some(m);
            }
        }
        let mut msg_kind: Option<String> = None;
        let label;
        let mut sends = Vec::new();
        match kind {
            StepKind::Deliver => {
                let round = states[actor]["ballot"]["round"].as_u64().unwrap_or(1);
                let mk = match &picked {
                    Some(m) => {
                        label = m.label.clone();
                        m.kind
                    }
                    None => {
                        let mk = msg_kinds[rng.below(msg_kinds.len())];
                        label = format!(
                            "{mk} {{ ballot: {}, from: {} }}",
                            round + rng.below(2) as u64,
                            cast[src.unwrap_or(0)].name
                        );
                        mk
                    }
                };
                msg_kind = Some(mk.into());
                apply_message(&mut states[actor], mk, &mut rng, tick, src.unwrap_or(0));
                let fanout = rng.below(3);
                for _ in 0..fanout {
                    let mut dst = rng.below(n);
                    if dst == actor {
                        dst = (dst + 1) % n;
                    }
                    if dst != actor {
                        let reply = msg_kinds[rng.below(msg_kinds.len())];
                        let label =
                            format!("{reply} {{ ballot: {round}, from: {} }}", cast[actor].name);
                        sends.push(Send {
                            dst,
                            msg_kind: Some(reply.into()),
                            label: Some(label.clone()),
                        });
                        in_flight.push(InFlight {
                            src: actor,
                            dst,
                            kind: reply,
                            label,
                        });
                    }
                }
            }
            StepKind::Drop => {
                let mk = picked
                    .as_ref()
                    .map_or_else(|| msg_kinds[rng.below(msg_kinds.len())], |m| m.kind);
                msg_kind = Some(mk.into());
                label = match &picked {
                    Some(m) => m.label.clone(),
                    None => format!("{mk} {{ .. }} from {}", cast[src.unwrap_or(0)].name),
                };
            }
            StepKind::Timeout => {
                let t = if rng.chance(50) {
                    "ElectionTimeout"
                } else {
                    "HeartbeatTimeout"
                };
                msg_kind = Some(t.into());
                label = format!("{t} at {}", cast[actor].name);
                if let Some(timers) = states[actor].get_mut("timers") {
                    timers["election"] = Value::from(if t == "ElectionTimeout" {
                        "fired"
                    } else {
                        "armed"
                    });
                    timers["heartbeat"] = Value::from(if t == "HeartbeatTimeout" {
                        "fired"
                    } else {
                        "idle"
                    });
                }
                if t == "ElectionTimeout" {
                    bump_ballot(&mut states[actor], actor);
                }
                if n > 1 {
                    let dst = (actor + 1) % n;
                    let round = states[actor]["ballot"]["round"].as_u64().unwrap_or(1);
                    let label =
                        format!("Prepare {{ ballot: {round}, from: {} }}", cast[actor].name);
                    sends.push(Send {
                        dst,
                        msg_kind: Some("Prepare".into()),
                        label: Some(label.clone()),
                    });
                    in_flight.push(InFlight {
                        src: actor,
                        dst,
                        kind: "Prepare",
                        label,
                    });
                }
            }
            StepKind::Crash => {
                label = format!("{} crashes", cast[actor].name);
                crashed[actor] = true;
            }
            StepKind::Recover => {
                label = format!("{} recovers from its checkpoint", cast[actor].name);
                crashed[actor] = false;
                if let Some(cp) = states[actor].get_mut("checkpoint") {
                    cp["applied"] = cp["min"].clone();
                }
                if let Some(s) = states[actor].get_mut("status") {
                    *s = Value::from("recovering");
                }
            }
            StepKind::Env => {
                let ev = if rng.chance(50) {
                    "FailureNotice"
                } else {
                    "ClockSkew"
                };
                msg_kind = Some(ev.into());
                label = format!("{ev} about {}", cast[actor].name);
                if let Some(fr) = states[0]
                    .get_mut("failure_reports")
                    .and_then(Value::as_object_mut)
                {
                    fr.insert(cast[actor].name.clone(), Value::from(tick));
                }
            }
        }
        if is_last_of_loop {
            if let Some((snap, snap_crashed)) = &loop_snapshot {
                states = snap.clone();
                crashed = snap_crashed.clone();
            }
        }
        explorer.push(rng.below(6));
        out_steps.push(Step {
            index: idx,
            kind,
            actor,
            src,
            msg_kind,
            label,
            sends: Some(sends),
            actors: states.clone(),
            crashed: crashed.clone(),
        });
    }

    let lasso = loop_start.is_some();
    let explorer_path = format!(
        "#/steps/{}",
        explorer
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join("/")
    );
    let (mutant, property) = if lasso {
        (
            None,
            Property {
                id: "LIVE-2".into(),
                name: "LIVE-2 every-write-eventually-acked".into(),
                kind: PropertyKind::Eventually,
            },
        )
    } else {
        (
            Some("s1-min-checkpoint-reset".into()),
            Property {
                id: "SAFE-7".into(),
                name: "SAFE-7 no-invariant-broken".into(),
                kind: PropertyKind::Always,
            },
        )
    };
    let doc = Trace {
        schema: Schema,
        scenario: if lasso {
            "leader-flap-under-partition"
        } else {
            "dup-restart-in-prepare"
        }
        .into(),
        mutant,
        property,
        actors: cast
            .into_iter()
            .enumerate()
            .map(|(i, a)| Actor {
                id: i,
                name: a.name,
                role: Some(a.role.into()),
                cluster: Some(a.cluster),
            })
            .collect(),
        initial,
        steps: out_steps,
        loop_start,
        explorer_path: Some(explorer_path),
    };
    serde_json::to_string(&doc).expect("a trace serialises")
}

struct InFlight {
    src: usize,
    dst: usize,
    kind: &'static str,
    label: String,
}

fn bump_ballot(state: &mut Value, me: usize) {
    if let Some(b) = state.get_mut("ballot") {
        let r = b["round"].as_u64().unwrap_or(0) + 1;
        b["round"] = Value::from(r);
        b["leader"] = Value::from(me);
    }
    if let Some(s) = state.get_mut("status") {
        *s = Value::from("candidate");
    }
}

fn apply_message(state: &mut Value, kind: &str, rng: &mut Rng, tick: u64, src: usize) {
    let role = state["role"].as_str().unwrap_or("").to_string();
    match role.as_str() {
        "meta" => {
            if let Some(cfg) = state.get_mut("config") {
                if kind == "ConfigUpdate" || kind == "Commit" {
                    let r = cfg["ballot"]["round"].as_u64().unwrap_or(0) + 1;
                    cfg["ballot"]["round"] = Value::from(r);
                    cfg["primary"] = Value::from(src);
                }
            }
            if let Some(p) = state
                .get_mut("pending_updates")
                .and_then(Value::as_array_mut)
            {
                if p.len() >= 3 {
                    p.remove(0);
                }
                p.push(json!({ "from": src, "kind": kind, "at": tick }));
            }
            if kind == "Heartbeat" {
                state["epoch"] = Value::from(state["epoch"].as_u64().unwrap_or(0) + 1);
            }
        }
        "client" => {
            let next = state["next_request"].as_u64().unwrap_or(1);
            if let Some(o) = state.get_mut("outstanding").and_then(Value::as_object_mut) {
                if rng.chance(50) || o.is_empty() {
                    o.insert(
                        format!("req-{next}"),
                        json!({ "decree": DECREES[rng.below(DECREES.len())], "sent_at": tick }),
                    );
                    state["next_request"] = Value::from(next + 1);
                } else if let Some(k) = o.keys().next().cloned() {
                    o.remove(&k);
                    if let Some(a) = state.get_mut("acked").and_then(Value::as_array_mut) {
                        if a.len() >= 4 {
                            a.remove(0);
                        }
                        a.push(Value::from(k));
                    }
                }
            }
        }
        _ => {
            let round = state["ballot"]["round"].as_u64().unwrap_or(1);
            match kind {
                "Prepare" => {
                    state["promised"] = json!({ "round": round + 1, "leader": src });
                    state["status"] = Value::from("follower");
                }
                "Promise" => {
                    state["status"] = Value::from("leader");
                    state["ballot"]["leader"] = Value::from(src);
                }
                "Accept" | "Accepted" => {
                    let slot =
                        state["commit_index"].as_u64().unwrap_or(0) + 1 + rng.below(2) as u64;
                    if let Some(log) = state.get_mut("log").and_then(Value::as_object_mut) {
                        let keys: BTreeMap<u64, String> = log
                            .keys()
                            .filter_map(|k| k.parse::<u64>().ok().map(|n| (n, k.clone())))
                            .collect();
                        if keys.len() >= 4 {
                            if let Some((_, k)) = keys.iter().next() {
                                log.remove(k);
                            }
                        }
                        log.insert(
                            slot.to_string(),
                            json!({ "ballot": round, "decree": DECREES[rng.below(DECREES.len())], "chosen": kind == "Accepted" }),
                        );
                    }
                }
                "Commit" => {
                    let ci = state["commit_index"].as_u64().unwrap_or(0) + 1;
                    state["commit_index"] = Value::from(ci);
                    state["checkpoint"]["applied"] = Value::from(ci);
                    // Every third commit moves the checkpoint forward.
                    let phase = ci % 3;
                    if phase == 0 {
                        state["checkpoint"]["min"] = Value::from(ci);
                    }
                }
                "ConfigUpdate" => {
                    state["ballot"]["round"] = Value::from(round + 1);
                }
                _ => {}
            }
            if let Some(p) = state
                .get_mut("peers")
                .and_then(|p| p.get_mut(format!("r{src}")))
            {
                p["last_heard"] = Value::from(tick);
                if kind == "Accepted" {
                    p["match_index"] = Value::from(p["match_index"].as_u64().unwrap_or(0) + 1);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_traces_validate() {
        for (s, a, l) in [
            (0, 1, None),
            (1, 1, None),
            (30, 4, None),
            (40, 5, Some(25)),
            (200, 10, Some(1)),
        ] {
            let t = synthetic_trace(s, a, l);
            validate(&t).unwrap_or_else(|e| panic!("{s}x{a}: {e}"));
        }
    }

    #[test]
    fn synthetic_lasso_returns_to_loop_start_state() {
        let t: Value = serde_json::from_str(&synthetic_trace(40, 5, Some(25))).unwrap();
        let steps = t["steps"].as_array().unwrap();
        assert_eq!(steps[39]["actors"], steps[23]["actors"]);
        assert_eq!(t["loop_start"], 25);
    }

    #[test]
    fn synthetic_is_deterministic() {
        assert_eq!(synthetic_trace(50, 6, None), synthetic_trace(50, 6, None));
    }

    #[test]
    fn index_escapes_script_terminators() {
        let mut t = Trace::parse(&synthetic_trace(2, 2, None)).unwrap();
        t.steps[0].label = "</script><script>alert(1)</script>".into();
        let page = render_index(&t, &serde_json::to_string(&t).unwrap(), None);
        assert!(!page.contains("</script><script>alert"));
    }
}
