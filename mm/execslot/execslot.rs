// SPDX-License-Identifier: GPL-2.0

//! Sub-page slots of executable memory: execmem's sub-page layer.
//!
//! ftrace trampolines (200 to 400 bytes) and kprobes instruction slots (16 to 128 bytes)
//! each took a whole page of executable memory, or a cache of their own. This allocator
//! hands out slots of any size up to a page, in [`placement::GRANULE`]-byte granules, from
//! pages shared by every user of the same execmem type. The C API is in
//! `include/linux/execslot.h`; the C half (debugfs files, the deferred-free work, perf
//! events, fault injection) is in `glue.c`.
//!
//! - Pages are [`ExecMem`] allocations, read-only and executable from the moment they are
//!   mapped; their contents are only written by text patching, under `text_mutex`, which
//!   the functions that write take as a [`TextMutexHeld`]. There is no permission change
//!   per slot. A new page and a freed slot are filled with INT3; a page whose slots are all
//!   free goes back to execmem after an RCU grace period.
//! - The lookups (`ffi.rs`) are lock-free: they read a table of pages sorted by address
//!   (`table.rs`), which writers replace under RCU, and the atomic entries of
//!   [`placement::PageMap`], which give only exact slots. They call nothing, cannot panic,
//!   and are blacklisted for kprobes.
//! - Changes are serialised by one mutex, `slots::STATE`, taken inside `text_mutex`. Its
//!   guard carries the only [`table::Writer`], which the functions that change the table
//!   take; the table's pages are borrowed from that or, in the lookups, on the promise of
//!   an RCU read-side critical section, for no longer than either is held.
//!
//! [`ExecMem`]: kernel::execmem::ExecMem
//! [`TextMutexHeld`]: kernel::text_patching::TextMutexHeld

const __LOG_PREFIX: &[u8] = b"execslot\0";

/// Warns once per call site if `$cond` holds, and gives its value: for states that a
/// bug elsewhere could cause, where a panic (an overflow or bounds check) would take the
/// kernel down from a free or a lookup.
macro_rules! warn_on_once {
    ($cond:expr) => {{
        static WARNED: core::sync::atomic::AtomicBool = core::sync::atomic::AtomicBool::new(false);
        let cond = $cond;
        if cond && !WARNED.swap(true, core::sync::atomic::Ordering::Relaxed) {
            kernel::warn_on!(true);
        }
        cond
    }};
}

mod debugfs;
mod deferred;
pub mod ffi;
mod kallsyms;
pub mod placement;
pub mod slots;
pub mod table;
#[cfg(CONFIG_EXECSLOT_KUNIT_TEST)]
mod tests;

/// `*count -= by`, or 0 and a warning if the accounting went wrong.
fn sub_count(count: &mut usize, by: usize) {
    *count = match count.checked_sub(by) {
        Some(v) => v,
        None => {
            warn_on_once!(true);
            0
        }
    };
}

/// `*count += by`, or the largest count and a warning if the accounting went wrong.
fn add_count(count: &mut usize, by: usize) {
    *count = match count.checked_add(by) {
        Some(v) => v,
        None => {
            warn_on_once!(true);
            usize::MAX
        }
    };
}
