//! What `tests/power_cut.rs` runs on each cycle: the ledger of what the store may hold, the
//! programs that change the store until the power goes, and the check after the cut.

pub mod check;
pub mod ledger;
pub mod workload;
