//! Petrel's protocol core: pure, deterministic state machines (stateright actors).
//!
//! Nothing here touches a clock, a socket, a thread or a random number generator. The
//! model checker (`petrel-spec`) and the QUIC node both drive the same [`Node`] actor; a
//! driver only maps [`stateright::actor::Out`] commands to effects.
pub mod auth;
pub mod bug;
pub mod client;
pub mod dup;
pub mod map;
pub mod meta;
pub mod msg;
pub mod node;
pub mod replica;
pub mod types;

pub use bug::{Bug, Bugs};
pub use map::Map;
pub use msg::{DupProgress, Msg, Timer};
pub use node::{Node, NodeState, NodeStorage};
pub use types::*;
