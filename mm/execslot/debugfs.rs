// SPDX-License-Identifier: GPL-2.0

//! The contents of `/sys/kernel/debug/execslot/`; `glue.c` owns the files.

use kernel::seq_file::SeqFile;
use kernel::seq_print;

use crate::placement::GRANULE;
use crate::placement::GRANULES;
use crate::placement::PAGE_SIZE;
use crate::slots::STATE;

/// Prints `stats`: the pages held and how many of them are empty (kept for the next
/// slot), then per cache the pages it has slots in (shared pages
/// count for every cache in them), its live slots, the bytes they hold, the allocations
/// refused for want of memory and the slots waiting for a grace period.
pub(crate) fn stats_show(m: &SeqFile) {
    let state = STATE.lock();
    let pages = state.table.pages();
    seq_print!(
        m,
        "pages: {} ({} bytes)\n",
        pages.len(),
        pages.len().saturating_mul(PAGE_SIZE)
    );
    seq_print!(
        m,
        "empty: {}\n",
        pages.iter().filter(|p| p.map.is_empty()).count()
    );
    seq_print!(
        m,
        "{:<24} {:>6} {:>8} {:>10} {:>9} {:>8}\n",
        "cache",
        "pages",
        "slots",
        "bytes",
        "failures",
        "pending"
    );
    for (id, c) in state.caches.iter().enumerate() {
        let held = pages
            .iter()
            .filter(|p| (0..GRANULES).any(|g| p.owner(g) == id))
            .count();
        seq_print!(
            m,
            "{:<24} {:>6} {:>8} {:>10} {:>9} {:>8}\n",
            c.cache.name().to_str().unwrap_or("?"),
            held,
            c.stats.slots,
            c.stats.bytes_held,
            c.stats.failures,
            c.stats.pending
        );
    }
}

/// Prints `slots`: every live slot, by address, with its size and its cache's name.
/// Addresses are zero unless `show_addr`, which the C side decides with
/// `kallsyms_show_value()` for the file's opener, as `/proc/kallsyms` and kprobes' `list`
/// do.
pub(crate) fn slots_show(m: &SeqFile, show_addr: bool) {
    let state = STATE.lock();
    for p in state.table.pages().iter() {
        for (first, n, owner) in p.map.each_slot() {
            let name = state
                .caches
                .get(usize::from(owner))
                .map_or(c"?", |c| c.cache.name());
            let addr = if show_addr { p.granule_addr(first) } else { 0 };
            seq_print!(
                m,
                "{:#018x} {} {}\n",
                addr,
                n * GRANULE,
                name.to_str().unwrap_or("?")
            );
        }
    }
}
