//! Reading client histories (JSON lines written by `petrel_node::client::History`):
//! `invoke` lines and their `ok` / `info` responses, paired by call id.
use petrel_core::{ClientOp, OpResult};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One client call as the history shows it.
#[derive(Clone, Debug)]
pub struct Call {
    pub call: String,
    pub pid: u32,
    /// The cluster (its meta server's id) and table: keys of different ones are different
    /// objects.
    pub meta: u64,
    pub table: u8,
    pub op: ClientOp,
    pub invoked_us: u64,
    /// A definite result and when it arrived; `None`: an error or no response line, whose
    /// effect is unknown.
    pub done: Option<(u64, OpResult)>,
    /// The error a call ended with, and when (its effect is unknown).
    pub failed: Option<(u64, String)>,
    /// The file and line of the invocation (for reports).
    pub at: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
enum Line {
    Invoke {
        call: String,
        pid: u32,
        us: u64,
        meta: u64,
        table: u8,
        op: ClientOp,
    },
    Ok {
        call: String,
        us: u64,
        result: OpResult,
    },
    Info {
        call: String,
        us: u64,
        error: String,
    },
}

/// History files under `dir`: any `*.history.jsonl` or `client-history*.jsonl`.
pub fn find(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
                continue;
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".history.jsonl")
                || (name.starts_with("client-history") && name.ends_with(".jsonl"))
            {
                found.push(entry.path());
            }
        }
    }
    found.sort();
    Ok(found)
}

/// Read history files into calls. `Err`: a file cannot be read or a line is malformed
/// (the history is then unreadable: never a pass).
pub fn read(paths: &[PathBuf]) -> Result<Vec<Call>, String> {
    let mut calls: BTreeMap<String, Call> = BTreeMap::new();
    for path in paths {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let at = format!("{}:{}", path.display(), i + 1);
            let parsed: Line = serde_json::from_str(line)
                .map_err(|e| format!("{at}: not a history line ({e})"))?;
            match parsed {
                Line::Invoke {
                    call,
                    pid,
                    us,
                    meta,
                    table,
                    op,
                } => {
                    if calls.contains_key(&call) {
                        return Err(format!("{at}: call {call} invoked twice"));
                    }
                    calls.insert(
                        call.clone(),
                        Call {
                            call,
                            pid,
                            meta,
                            table,
                            op,
                            invoked_us: us,
                            done: None,
                            failed: None,
                            at,
                        },
                    );
                }
                Line::Ok { call, us, result } => {
                    let c = calls
                        .get_mut(&call)
                        .ok_or_else(|| format!("{at}: a response to {call}, never invoked"))?;
                    if us < c.invoked_us {
                        return Err(format!("{at}: call {call} answered before it was invoked"));
                    }
                    c.done = Some((us, result));
                }
                Line::Info { call, us, error } => {
                    let c = calls
                        .get_mut(&call)
                        .ok_or_else(|| format!("{at}: a response to {call}, never invoked"))?;
                    c.failed = Some((us, error));
                }
            }
        }
    }
    Ok(calls.into_values().collect())
}
