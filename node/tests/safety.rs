//! Real-process tests for the node-side parts of issue #11: storage never rolls back a
//! decision, bounded keys and values, a replica restarted within the idle timeout
//! rejoins, operator messages only from operator certificates.
//!
//! Every child process is killed when its guard drops, and every wait is bounded.
mod common;
use common::*;
use std::time::Duration;

/// Offsets of the complete records of a storage log (format 3: `PETRELS3`, then
/// `[magic "PTRL"][u32 BE len][u32 BE crc][len bytes]`), read independently of the
/// node's own reader.
fn record_offsets(bytes: &[u8]) -> Vec<(usize, usize)> {
    assert!(bytes.starts_with(b"PETRELS3"), "not a format-3 storage log");
    let mut out = Vec::new();
    let mut off = 8;
    while off + 12 <= bytes.len() && &bytes[off..off + 4] == b"PTRL" {
        let len = u32::from_be_bytes([bytes[off + 4], bytes[off + 5], bytes[off + 6], bytes[off + 7]]) as usize;
        if off + 12 + len > bytes.len() {
            break;
        }
        out.push((off, 12 + len));
        off += 12 + len;
    }
    out
}

/// A meta server whose last saved record is damaged (complete, wrong checksum) refuses to
/// start, naming the file and the offset; one whose last append was cut short starts from
/// the record before it and serves. Before: the damaged record was taken for a torn tail
/// and the meta server came back one decision behind its replicas.
#[test]
fn a_corrupt_final_meta_record_refuses_to_start_and_a_torn_one_recovers() {
    let mut c = Cluster::start(&fast_plan("alpha", 1));
    let cc = c.client_config();
    eventually(&cc, &["put", "k", "1"], "ok", Duration::from_secs(15));
    c.proc("meta-0").stop(Duration::from_secs(10));
    let meta = c.layout.nodes[0].clone();
    let log = meta.data_dir.join("storage").join("storage.log");
    let good = std::fs::read(&log).expect("meta storage");
    let records = record_offsets(&good);
    let &(last, len) = records.last().expect("the meta server saved something");
    assert_eq!(last + len, good.len(), "the log ends with a complete record");

    // 1. One flipped bit inside the last record's payload.
    let mut bad = good.clone();
    bad[last + 12 + len / 2 - 6] ^= 0x04;
    std::fs::write(&log, &bad).expect("corrupt");
    let config = meta.config.to_string_lossy().to_string();
    let out = petrel(&["meta", "--config", &config]);
    assert_eq!(out.code, Some(1), "a damaged decision must stop the meta server: {}", out.stderr);
    for needle in ["storage.log", &format!("offset {last}"), "complete but fails its checksum", "refusing to start", "Do not delete or move"] {
        assert!(out.stderr.contains(needle), "stderr lacks {needle:?}: {}", out.stderr);
    }
    assert!(!out.stderr.contains("panicked") && !out.stderr.contains("move it away"), "{}", out.stderr);
    assert_eq!(std::fs::read(&log).expect("read"), bad, "the damaged file is left as it was");

    // 2. The last append cut in the middle (a crash before its fsync returned): the record
    //    before it is the state, and the meta server serves.
    std::fs::write(&log, &good[..last + len / 2]).expect("truncate");
    c.start_node(0);
    assert!(c.proc("meta-0").log_text().contains("incomplete final record"), "the torn append is reported");
    eventually(&cc, &["get", "k"], "1", Duration::from_secs(15));
    eventually(&cc, &["put", "k", "2"], "ok", Duration::from_secs(15));
    eventually(&cc, &["get", "k"], "2", Duration::from_secs(10));
}

/// The same rule holds for a replica's storage (the same store).
#[test]
fn a_corrupt_final_replica_record_refuses_to_start() {
    let mut c = Cluster::start(&fast_plan("alpha", 1));
    let cc = c.client_config();
    eventually(&cc, &["put", "k", "1"], "ok", Duration::from_secs(15));
    c.proc("replica-1").stop(Duration::from_secs(10));
    let node = c.layout.nodes[1].clone();
    let log = node.data_dir.join("storage").join("storage.log");
    let mut bytes = std::fs::read(&log).expect("replica storage");
    let &(last, len) = record_offsets(&bytes).last().expect("a record");
    // The checksum field itself.
    bytes[last + 9] ^= 0x80;
    std::fs::write(&log, &bytes).expect("corrupt");
    let config = node.config.to_string_lossy().to_string();
    let out = petrel(&["replica", "--config", &config]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    assert!(out.stderr.contains(&format!("offset {last}, {len} bytes")), "{}", out.stderr);
}
