// SPDX-License-Identifier: GPL-2.0

//! Freeing slots after an RCU grace period, for users whose slots may still be executing
//! when they are done with them (kprobes).
//!
//! A deferred free marks the slot pending in its page; the reaper work (`glue.c`) makes
//! what is pending ripe, waits for a grace period, then frees what is ripe.

use core::sync::atomic::Ordering;

use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::Result;
use kernel::pr_warn_once;
use kernel::text_patching::TextMutexHeld;

use crate::add_count;
use crate::placement::GRANULE;
use crate::slots::free;
use crate::slots::STATE;
use crate::sub_count;
use crate::table::BITMAP_WORDS;

/// Marks the live slot that starts at `slot` to be freed after an RCU grace period.
///
/// # Safety
///
/// No new user reaches the slot any more; those already in it leave it within an RCU
/// grace period.
pub(crate) unsafe fn free_deferred(slot: usize) -> Result {
    let mut guard = STATE.lock();
    let state = &mut *guard;
    let (page, rel) = state.table.pages().page_of(slot).ok_or(EINVAL)?;
    let (off, _) = page.map.slot_at_offset(rel).ok_or(EINVAL)?;
    let g = off / GRANULE;
    let word = page.pending.get(g / 64).ok_or(EINVAL)?;
    if off != rel || page.is_pending(g) {
        return Err(EINVAL);
    }
    word.fetch_or(1 << (g % 64), Ordering::Relaxed);
    if let Some(c) = state.caches.get_mut(page.owner(g)) {
        add_count(&mut c.stats.pending, 1);
    }
    drop(guard);
    // SAFETY: queues the reaper work, a static work item; callable from process context.
    unsafe { bindings::execslot_schedule_reap() };
    Ok(())
}

/// First step of the reaper: what is pending now becomes ripe; then the caller waits for
/// a grace period.
pub(crate) fn reap_begin() {
    let state = STATE.lock();
    for p in state.table.pages().iter() {
        for w in 0..BITMAP_WORDS {
            let bits = p.pending[w].swap(0, Ordering::Relaxed);
            p.ripe[w].fetch_or(bits, Ordering::Relaxed);
        }
    }
}

/// Takes one ripe slot off its bitmap and the pending count; the caller frees it.
fn take_ripe() -> Option<usize> {
    let mut guard = STATE.lock();
    let state = &mut *guard;
    for p in state.table.pages().iter() {
        for (w, ripe) in p.ripe.iter().enumerate() {
            let bits = ripe.load(Ordering::Relaxed);
            if bits == 0 {
                continue;
            }
            let g = w * 64 + bits.trailing_zeros() as usize;
            ripe.fetch_and(!(1 << (g % 64)), Ordering::Relaxed);
            if let Some(c) = state.caches.get_mut(p.owner(g)) {
                sub_count(&mut c.stats.pending, 1);
            }
            return Some(p.granule_addr(g));
        }
    }
    None
}

/// Last step of the reaper, a grace period after [`reap_begin()`]: frees what is ripe.
///
/// # Safety
///
/// Every call of [`reap_begin()`] returned an RCU grace period or more before this call,
/// and none is made until this call returns.
pub(crate) unsafe fn reap(held: &TextMutexHeld<'_>) {
    while let Some(slot) = take_ripe() {
        // SAFETY: the slot was given to `free_deferred()`, whose caller promised that
        // nothing new reaches it and that what is in it leaves within a grace period. It
        // became ripe in a call of `reap_begin()` that returned a grace period or more ago
        // (the caller's guarantee).
        if unsafe { free(held, slot) }.is_err() {
            pr_warn_once!("cannot free deferred slot {:#x}\n", slot);
        }
    }
}
