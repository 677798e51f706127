//! The pure modules of the series, compiled for the host from the very files that the
//! series adds to the kernel (`#[path]`), so the tested code is the shipped code.

#[path = "../../../kernel/execslot/placement.rs"]
pub mod placement;

// The pure parts of the x86 ftrace trampoline builder; `build` refers to `super::insn`, as
// in arch/x86/kernel/ftrace_tramp.rs.
#[path = "../../../arch/x86/kernel/ftrace_tramp/insn.rs"]
pub mod insn;

#[path = "../../../arch/x86/kernel/ftrace_tramp/build.rs"]
pub mod build;
