//! The `mllp_frame` target; its body and what it checks: `intake_fuzz::run` (fuzz/src/lib.rs).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    intake_fuzz::run("mllp_frame", data);
});
