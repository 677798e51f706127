// SPDX-License-Identifier: GPL-2.0

//! The C interface: `include/linux/execslot.h` for users, `internal.h` beside this file
//! for `glue.c` and `mm/execmem.c`.

use core::slice;

use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::code::ERANGE;
use kernel::error::Result;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::ffi::c_void;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::text_patching::TextMutexHeld;

use crate::debugfs;
use crate::deferred;
use crate::kallsyms;
use crate::placement::GRANULE_SHIFT;
use crate::slots;
use crate::slots::CacheRef;
use crate::slots::CACHES;
use crate::slots::STATE;
use crate::table::Pages;

/// Initialises the allocator; called once from `execmem_init()`.
///
/// # Safety
///
/// Called once, before any other function of the allocator.
#[export]
pub unsafe extern "C" fn execslot_init() {
    // SAFETY: called once, before any other use of `STATE` (the caller's guarantee).
    unsafe { STATE.init() };
    // SAFETY: as above, for `KALLSYM_HINTS`.
    unsafe { kallsyms::KALLSYM_HINTS.init() };
}

fn to_errno(r: Result) -> c_int {
    match r {
        Ok(()) => 0,
        Err(e) => e.to_errno(),
    }
}

/// C entry point of `execslot_alloc_locked()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller holds `text_mutex`; `cache` points to an `execslot_cache` that lives as
/// long as the kernel and is not written any more; `slot` is valid for a write.
#[export]
pub unsafe extern "C" fn execslot_alloc_locked(
    cache: *mut bindings::execslot_cache,
    size: usize,
    slot: *mut *mut c_void,
) -> c_int {
    // SAFETY: the caller's guarantee.
    let cache = unsafe { CacheRef::new(cache) };
    // SAFETY: the caller holds `text_mutex` for the whole call.
    let res = unsafe { TextMutexHeld::with_assumed(|held| slots::alloc(held, cache, size)) };
    match res {
        Ok(addr) => {
            // SAFETY: the caller provides a valid `slot`.
            unsafe { *slot = addr as *mut c_void };
            0
        }
        Err(e) => e.to_errno(),
    }
}

/// C entry point of `execslot_write_locked()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller holds `text_mutex`; `src` is valid for reading `len` bytes; nothing executes
/// the slot yet.
#[export]
pub unsafe extern "C" fn execslot_write_locked(
    slot: *mut c_void,
    offset: usize,
    src: *const c_void,
    len: usize,
) -> c_int {
    let src: &[u8] = if len == 0 {
        &[]
    } else if src.is_null() || isize::try_from(len).is_err() {
        return EINVAL.to_errno();
    } else {
        // SAFETY: the caller provides `len` readable bytes at `src`, which is not null;
        // the slice only lives for this call, and the slots it is copied into are never
        // mapped writable, so nothing writes it meanwhile.
        unsafe { slice::from_raw_parts(src.cast::<u8>(), len) }
    };
    // SAFETY: the caller holds `text_mutex` for the whole call, and nothing executes the
    // slot yet (the header's rule: fill a slot before publishing its address).
    to_errno(unsafe {
        TextMutexHeld::with_assumed(|held| slots::write(held, slot as usize, offset, src))
    })
}

/// C entry point of `execslot_free_locked()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller holds `text_mutex`, and nothing executes the slot any more.
#[export]
pub unsafe extern "C" fn execslot_free_locked(slot: *mut c_void) -> c_int {
    // SAFETY: the caller holds `text_mutex` for the whole call, and nothing executes the
    // slot any more (the caller's guarantee).
    to_errno(unsafe { TextMutexHeld::with_assumed(|held| slots::free(held, slot as usize)) })
}

/// C entry point of `execslot_free_deferred()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// Process context; no new user reaches the slot any more, and those already in it leave it
/// within an RCU grace period.
#[export]
pub unsafe extern "C" fn execslot_free_deferred(slot: *mut c_void) -> c_int {
    // SAFETY: the caller's guarantee.
    to_errno(unsafe { deferred::free_deferred(slot as usize) })
}

/// First step of the reaper work (`glue.c`).
///
/// # Safety
///
/// Called from the reaper work only.
#[export]
pub unsafe extern "C" fn execslot_reap_begin() {
    deferred::reap_begin();
}

/// Last step of the reaper work, after a grace period since `execslot_reap_begin()`.
///
/// # Safety
///
/// Called from the reaper work only, with `text_mutex` held, after a `synchronize_rcu()`
/// that began when its `execslot_reap_begin()` had returned. The reaper work is the only
/// caller of both, and never runs twice at once (one work item, always queued on the same
/// workqueue).
#[export]
pub unsafe extern "C" fn execslot_reap_locked() {
    let reap = |held: &TextMutexHeld<'_>| {
        // SAFETY: `execslot_reap_begin()`, the only caller of `reap_begin()`, returned a
        // grace period ago, and is not called again until this returns (the caller's
        // guarantee).
        unsafe { deferred::reap(held) }
    };
    // SAFETY: the caller holds `text_mutex` for the whole call.
    unsafe { TextMutexHeld::with_assumed(reap) };
}

/// Shows `/sys/kernel/debug/execslot/stats` (`glue.c` owns the file).
///
/// # Safety
///
/// `m` is the `seq_file` of a `show` callback, used by no other thread meanwhile.
#[export]
pub unsafe extern "C" fn execslot_seq_stats(m: *mut bindings::seq_file) {
    // SAFETY: the caller's guarantee, for the duration of this call.
    debugfs::stats_show(unsafe { SeqFile::from_raw(m) });
}

/// Shows `/sys/kernel/debug/execslot/slots` (`glue.c` owns the file).
///
/// # Safety
///
/// `m` is the `seq_file` of a `show` callback, used by no other thread meanwhile.
#[export]
pub unsafe extern "C" fn execslot_seq_slots(m: *mut bindings::seq_file, show_addr: bool) {
    // SAFETY: the caller's guarantee, for the duration of this call.
    debugfs::slots_show(unsafe { SeqFile::from_raw(m) }, show_addr);
}

/// The `*symnum`-th slot of `cache`, for kallsyms; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller is in an RCU read-side critical section; the pointers are valid.
#[export]
pub unsafe extern "C" fn __execslot_get_kallsym(
    cache: *const bindings::execslot_cache,
    symnum: *mut c_uint,
    value: *mut usize,
    size: *mut usize,
) -> c_int {
    // SAFETY: the caller is in an RCU read-side critical section for the whole call.
    let pages = unsafe { Pages::rcu_held() };
    // SAFETY: the caller provides valid pointers.
    let want = unsafe { *symnum };
    // SAFETY: as above.
    unsafe {
        match kallsyms::get_kallsym(pages, cache, want) {
            Ok((addr, len)) => {
                *value = addr;
                *size = len;
                0
            }
            Err(left) => {
                *symnum = left;
                ERANGE.to_errno()
            }
        }
    }
}

/// Lock-free: whether `addr` lies in a live slot.
///
/// # Safety
///
/// The caller is in an RCU read-side critical section.
#[export]
pub unsafe extern "C" fn __execslot_contains(addr: usize) -> bool {
    // SAFETY: the caller is in an RCU read-side critical section for the whole call.
    let pages = unsafe { Pages::rcu_held() };
    match pages.page_of(addr) {
        Some((p, off)) => p.map.is_used(off >> GRANULE_SHIFT),
        None => false,
    }
}

/// Lock-free: the live slot around `addr`, and its cache.
///
/// # Safety
///
/// The caller is in an RCU read-side critical section; the output pointers are valid
/// for writes.
#[export]
pub unsafe extern "C" fn __execslot_lookup(
    addr: usize,
    start: *mut usize,
    size: *mut usize,
    cache: *mut *const bindings::execslot_cache,
) -> bool {
    // SAFETY: the caller is in an RCU read-side critical section for the whole call.
    let pages = unsafe { Pages::rcu_held() };
    let Some((p, rel)) = pages.page_of(addr) else {
        return false;
    };
    // The owner is the slot's tag, read with it: never the owner of a slot that took its
    // place meanwhile.
    let Some((first, n, id)) = p.map.tagged_slot_at(rel >> GRANULE_SHIFT) else {
        return false;
    };
    let owner = CACHES
        .get(usize::from(id))
        .map_or(core::ptr::null_mut(), |c| {
            c.load(core::sync::atomic::Ordering::Acquire)
        });
    // SAFETY: the caller provides valid output pointers.
    unsafe {
        *start = p.granule_addr(first);
        *size = n << GRANULE_SHIFT;
        *cache = owner;
    }
    true
}

/// Keeps kprobes off the lookups, as `NOKPROBE_SYMBOL()` does for C: they run from the
/// unwinder, possibly in a kprobe handler or in NMI context. Without kprobes the linker
/// script has no such section, as `NOKPROBE_SYMBOL()` is then empty.
#[cfg(CONFIG_KPROBES)]
#[used(compiler)]
#[link_section = "_kprobe_blacklist"]
static KPROBE_BLACKLIST: [unsafe extern "C" fn(usize) -> bool; 1] = [__execslot_contains];

#[cfg(CONFIG_KPROBES)]
#[used(compiler)]
#[link_section = "_kprobe_blacklist"]
static KPROBE_BLACKLIST_LOOKUP: [unsafe extern "C" fn(
    usize,
    *mut usize,
    *mut usize,
    *mut *const bindings::execslot_cache,
) -> bool; 1] = [__execslot_lookup];
