//! The pure modules of the series, compiled for the host from the very files that the
//! series adds to the kernel (`#[path]`), so the tested code is the shipped code.

#[path = "../../../kernel/execslot/placement.rs"]
pub mod placement;
