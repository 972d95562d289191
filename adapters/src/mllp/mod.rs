//! MLLP: `0x0B` message `0x1C 0x0D` over TCP.

pub mod client;
pub mod frame;
pub mod listener;
