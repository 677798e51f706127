//! The pure modules of the series, compiled for the host from the very files that the
//! series adds to the kernel (`#[path]`), so the tested code is the shipped code.

#[path = "../../../mm/execslot/placement.rs"]
pub mod placement;

// The pure parts of the x86 ftrace trampoline builder; `build` refers to `super::decode`,
// as in arch/x86/kernel/ftrace_tramp.rs. The tests implement `decode::Decoder` with
// iced-x86 (tests/common/mod.rs), the kernel with its own decoder.
#[path = "../../../arch/x86/kernel/ftrace_tramp/decode.rs"]
pub mod decode;

#[path = "../../../arch/x86/kernel/ftrace_tramp/build.rs"]
pub mod build;
