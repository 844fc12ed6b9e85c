//! The `petrel-check` command line as a user's shell sees it.
use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_petrel-check");
/// The signal's number on Linux.
const SIGPIPE: i32 = 13;

/// `petrel-check list | head -0`: the reader is gone before the first line is written.
/// The checker ends quietly (killed by SIGPIPE, as a Unix filter is) instead of panicking
/// in `println!` with "failed printing to stdout: Broken pipe".
#[test]
fn list_into_a_closed_pipe_ends_quietly() {
    let (reader, writer) = std::io::pipe().expect("pipe");
    drop(reader);
    let mut child = Command::new(BIN)
        .arg("list")
        .stdout(writer)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn petrel-check");
    let mut err = String::new();
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut err)
        .expect("stderr");
    let status = child.wait().expect("wait");
    assert!(!err.contains("panicked"), "petrel-check panicked: {err}");
    assert_eq!(status.signal(), Some(SIGPIPE), "{status:?}: {err}");
}
