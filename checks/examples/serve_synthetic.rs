//! Serve three synthetic counterexamples for the browser tests (and for a look by hand):
//! a safety trace, a liveness lasso and a 1,000-step × 10-actor trace, each on its own
//! loopback port. Prints their URLs as one JSON line on stdout, then serves for the number
//! of seconds given as the first argument (default 120) and exits.
//!
//! `cargo run -p petrel-checks --example serve_synthetic -- 300`

use std::io::Write;
use std::time::Duration;

use petrel_checks::view::{serve, synthetic_trace};

fn main() {
    let secs: u64 = match std::env::args().nth(1) {
        None => 120,
        Some(a) => a.parse().unwrap_or_else(|_| {
            eprintln!("usage: serve_synthetic [SECONDS]");
            std::process::exit(2)
        }),
    };
    let explorer = Some("http://127.0.0.1:3001".to_string());
    let loopback = "127.0.0.1:0".parse().expect("loopback address");
    let start = |trace: String| {
        serve(trace, loopback, explorer.clone()).unwrap_or_else(|e| {
            eprintln!("serve_synthetic: {e}");
            std::process::exit(1)
        })
    };
    let safety = start(synthetic_trace(30, 5, None));
    let lasso = start(synthetic_trace(40, 5, Some(26)));
    let big = start(synthetic_trace(1000, 10, None));
    let line = serde_json::json!({
        "view": safety.url(),
        "lasso": lasso.url(),
        "big": big.url(),
    });
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").expect("stdout");
    out.flush().expect("stdout");
    drop(out);
    std::thread::sleep(Duration::from_secs(secs));
    safety.stop();
    lasso.stop();
    big.stop();
}
