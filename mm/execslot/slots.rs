// SPDX-License-Identifier: GPL-2.0

//! Allocating, writing and freeing slots, per cache: the Rust interface of the allocator
//! (`ffi.rs` is the C one).

use core::ptr;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KVec;
use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::code::ENOMEM;
use kernel::error::Result;
use kernel::execmem::Type;
use kernel::ffi::c_uint;
use kernel::pr_warn_once;
use kernel::prelude::*;
use kernel::sync::global_lock;
use kernel::text_patching::TextMutexHeld;

use crate::add_count;
use crate::placement::granules_for;
use crate::placement::GRANULE;
use crate::placement::GRANULE_SHIFT;
use crate::sub_count;
use crate::table::SlotPage;
use crate::table::Writer;
use crate::table::INT3;
use crate::table::NO_OWNER;

/// A user of slots: a C `struct execslot_cache` that lives as long as the kernel.
///
/// # Invariants
///
/// The pointer is valid for the life of the kernel and the structure is never written
/// after it was first passed in.
#[derive(Clone, Copy)]
pub struct CacheRef(*const bindings::execslot_cache);

// SAFETY: the structure is read only (type invariant), from any thread.
unsafe impl Send for CacheRef {}

// SAFETY: as above.
unsafe impl Sync for CacheRef {}

impl CacheRef {
    /// # Safety
    ///
    /// `cache` points to an `execslot_cache` that lives as long as the kernel and that is
    /// not written any more.
    pub unsafe fn new(cache: *const bindings::execslot_cache) -> Self {
        // INVARIANT: the caller's guarantee.
        Self(cache)
    }

    pub(crate) fn as_ptr(self) -> *const bindings::execslot_cache {
        self.0
    }

    fn get(&self) -> &bindings::execslot_cache {
        // SAFETY: valid for the life of the kernel (type invariant).
        unsafe { &*self.0 }
    }

    /// The name of the cache's slots, for kallsyms and debugfs.
    pub(crate) fn name(&self) -> &CStr {
        // SAFETY: the name is a C string that lives as long as the cache (the header says
        // so of `struct execslot_cache`).
        unsafe { CStr::from_char_ptr(self.get().name) }
    }

    /// Whether the cache's slots are announced to perf.
    pub(crate) fn perf_ksymbol(&self) -> bool {
        self.get().perf_ksymbol
    }

    /// Tells perf that the slot at `addr` comes (or, if `unregister`, goes).
    pub(crate) fn announce(&self, addr: usize, len: usize, unregister: bool) {
        if self.perf_ksymbol() {
            // SAFETY: the cache is valid (type invariant); the event is only a record of
            // an address range, which perf does not dereference.
            unsafe { bindings::execslot_perf_ksymbol(self.0, addr, len as c_uint, unregister) };
        }
    }

    fn ty(&self) -> Result<Type> {
        Type::from_raw(self.get().type_).ok_or(EINVAL)
    }
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Stats {
    /// Live slots.
    pub(crate) slots: usize,
    /// Bytes of the live slots, rounded up to granules.
    pub(crate) bytes_held: usize,
    /// Allocations refused for want of memory.
    pub(crate) failures: usize,
    /// Live slots waiting to be freed after a grace period (`execslot_free_deferred()`).
    pub(crate) pending: usize,
}

pub(crate) struct Cache {
    pub(crate) cache: CacheRef,
    pub(crate) stats: Stats,
}

/// What the allocator's mutex protects.
pub(crate) struct State {
    /// The caches by owner id, in the order they first allocated.
    pub(crate) caches: KVec<Cache>,
    /// The right to change the table and the slots.
    pub(crate) table: Writer,
}

global_lock! {
    // SAFETY: `execslot_init()` initialises it before any other use.
    #[allow(
        clippy::undocumented_unsafe_blocks,
        reason = "clippy does not see the SAFETY comment of `Writer::new()` through the macro"
    )]
    pub(crate) unsafe(uninit) static STATE: Mutex<State> = State {
        caches: KVec::new(),
        table: {
            // SAFETY: the one writer, inside the allocator's mutex; a static is
            // initialised once.
            unsafe { Writer::new() }
        },
    };
}

/// The caches, by owner id, for the lock-free lookups. Entries are set once, under
/// [`static@STATE`], before the id is stored in any page, and never change.
pub(crate) static CACHES: [core::sync::atomic::AtomicPtr<bindings::execslot_cache>;
    NO_OWNER as usize] =
    [const { core::sync::atomic::AtomicPtr::new(ptr::null_mut()) }; NO_OWNER as usize];

/// The owner id of `cache`, registering it on its first allocation.
fn cache_id(state: &mut State, cache: CacheRef) -> Result<usize> {
    if let Some(i) = state
        .caches
        .iter()
        .position(|c| ptr::eq(c.cache.as_ptr(), cache.as_ptr()))
    {
        return Ok(i);
    }
    let id = state.caches.len();
    if id >= NO_OWNER as usize {
        return Err(EINVAL);
    }
    state.caches.push(
        Cache {
            cache,
            stats: Stats::default(),
        },
        GFP_KERNEL,
    )?;
    if let Some(c) = CACHES.get(id) {
        c.store(
            cache.as_ptr().cast_mut(),
            core::sync::atomic::Ordering::Release,
        );
    }
    Ok(id)
}

/// Whether `fail_execslot` fault injection fails this allocation.
#[cfg(CONFIG_FAIL_EXECSLOT)]
fn should_fail(size: usize) -> bool {
    // SAFETY: `should_fail()` may be called in any context, with any size.
    unsafe { bindings::execslot_should_fail(size) }
}

#[cfg(not(CONFIG_FAIL_EXECSLOT))]
fn should_fail(_size: usize) -> bool {
    false
}

/// Whether slots of type `ty` may go into `page`: it has the type or one that execmem
/// allocates alike.
fn serves(page: &SlotPage, ty: Type) -> bool {
    page.mem.ty() == ty || page.mem.ty().same_range(ty)
}

/// Allocates a slot of `size` bytes for `cache`; the slot holds INT3 until written.
pub fn alloc(held: &TextMutexHeld<'_>, cache: CacheRef, size: usize) -> Result<usize> {
    let n = granules_for(size).map_err(|_| EINVAL)?;
    let ty = cache.ty()?;
    let mut guard = STATE.lock();
    let state = &mut *guard;
    let id = cache_id(state, cache)?;
    let failed = |state: &mut State| {
        if let Some(c) = state.caches.get_mut(id) {
            add_count(&mut c.stats.failures, 1);
        }
    };
    if should_fail(size) {
        failed(state);
        return Err(ENOMEM);
    }

    // Best fit over all pages that serve the type: the tightest free run wins, so the
    // spare page (see free()) is taken only when no other page has room. find() refuses
    // at once a request longer than a page's bound on its longest free run
    // (PageMap::free_run_bound()), so such a page costs one load.
    let mut best: Option<(usize, usize, usize)> = None;
    for p in state.table.pages().iter() {
        if !serves(p, ty) {
            continue;
        }
        if let Some((first, run)) = p.map.find(n) {
            if best.is_none_or(|(_, _, r)| run < r) {
                best = Some((p.addr(), first, run));
                if run == n {
                    // Nothing fits tighter, and a tie keeps this page.
                    break;
                }
            }
        }
    }
    let (addr, first) = match best {
        Some((addr, first, _)) => (addr, first),
        None => match state.table.add_page(held, ty) {
            Ok(addr) => (addr, 0),
            Err(e) => {
                failed(state);
                return Err(e);
            }
        },
    };
    let w = &state.table;
    let (page, _) = w.pages().page_of(addr).ok_or(EINVAL)?;
    // id < NO_OWNER, checked by cache_id(). The id is the slot's tag: a lookup reads the
    // owner with the slot.
    if page.map.mark(first, n, id as u8).is_err() {
        warn_on_once!(true);
        return Err(EINVAL);
    }
    w.changed();
    let slot = page.granule_addr(first);
    cache.announce(slot, n << GRANULE_SHIFT, false);
    if let Some(c) = state.caches.get_mut(id) {
        add_count(&mut c.stats.slots, 1);
        add_count(&mut c.stats.bytes_held, n * GRANULE);
    }
    Ok(slot)
}

/// The page and the slot (first granule, size in bytes) that starts at `slot`.
fn slot_of(w: &Writer, slot: usize) -> Result<(&SlotPage, usize, usize)> {
    let (page, rel) = w.pages().page_of(slot).ok_or(EINVAL)?;
    let (off, size) = page.map.slot_at_offset(rel).ok_or(EINVAL)?;
    if off != rel {
        return Err(EINVAL);
    }
    Ok((page, off / GRANULE, size))
}

/// Writes `src` at `offset` into the live slot that starts at `slot`.
///
/// # Safety
///
/// Nothing executes the bytes written: a slot is filled before its address is published.
pub unsafe fn write(held: &TextMutexHeld<'_>, slot: usize, offset: usize, src: &[u8]) -> Result {
    let state = STATE.lock();
    let (page, first, size) = slot_of(&state.table, slot)?;
    if offset > size || src.len() > size - offset {
        return Err(EINVAL);
    }
    let off = (first * GRANULE).checked_add(offset).ok_or(EINVAL)?;
    // SAFETY: the bytes lie inside the slot, which nothing executes (the caller's guarantee).
    unsafe { held.copy(&page.mem, off, src) }
}

/// Frees the live slot that starts at `slot`: fills it with INT3, and gives its page back
/// to execmem if that was its last slot and another empty page serves its type.
///
/// # Safety
///
/// Nothing executes the slot any more.
pub unsafe fn free(held: &TextMutexHeld<'_>, slot: usize) -> Result {
    let mut guard = STATE.lock();
    let state = &mut *guard;
    let w = &state.table;
    let (page, first, size) = slot_of(w, slot)?;
    if page.is_pending(first) {
        return Err(EINVAL);
    }
    let id = page.owner(first);
    let cache = state.caches.get(id).map(|c| c.cache);
    if let Some(c) = cache {
        // The slot's end, before its bytes change and it leaves the lookups.
        c.announce(slot, size, true);
    }
    // `first < GRANULES`: the product is below a page.
    let off = first.wrapping_mul(GRANULE);
    // SAFETY: the slot lies inside the page, and nothing executes it (the caller's guarantee).
    if let Err(e) = unsafe { held.set(&page.mem, off, INT3, size) } {
        // The slot stays: perf hears of it again.
        if let Some(c) = cache {
            c.announce(slot, size, false);
        }
        return Err(e);
    }
    page.map.free(first, size / GRANULE).map_err(|_| EINVAL)?;
    w.changed();
    if let Some(c) = state.caches.get_mut(id) {
        sub_count(&mut c.stats.slots, 1);
        sub_count(&mut c.stats.bytes_held, size);
    }
    if !page.map.is_empty() {
        return Ok(());
    }
    // The page is empty. The first empty page of its types stays as a spare: a user that
    // creates and frees one slot over and over would otherwise take a page from execmem,
    // fill it and give it back each time, with the permission changes and TLB flushes of
    // execmem behind every one of them. Any further empty page goes.
    let ty = page.mem.ty();
    let other_empty = w
        .pages()
        .iter()
        .any(|p| !ptr::eq(p, page) && serves(p, ty) && p.map.is_empty());
    if !other_empty {
        return Ok(());
    }
    // It leaves the table, and goes back to execmem once no lookup can still be looking
    // at it. Without memory for a new table it stays, empty, for the next allocation.
    let page: *const SlotPage = page;
    if state.table.remove_page(page).is_err() {
        pr_warn_once!("keeping an empty page: no memory for a new table\n");
    }
    Ok(())
}

/// Asks the table to take out the page of the live slot `slot`, for the tests.
#[cfg(CONFIG_EXECSLOT_KUNIT_TEST)]
pub(crate) fn remove_page_of(slot: usize) -> Result {
    let mut guard = STATE.lock();
    let state = &mut *guard;
    let (page, _, _) = slot_of(&state.table, slot)?;
    let page: *const SlotPage = page;
    state.table.remove_page(page)
}

/// Statistics of `cache`, the number of pages that hold slots and the number of empty
/// pages that serve its type, for the tests.
#[cfg(CONFIG_EXECSLOT_KUNIT_TEST)]
pub(crate) fn stats(cache: CacheRef) -> (Stats, usize, usize) {
    let state = STATE.lock();
    let st = state
        .caches
        .iter()
        .find(|c| ptr::eq(c.cache.as_ptr(), cache.as_ptr()))
        .map_or(Stats::default(), |c| c.stats);
    let pages = state.table.pages();
    let ty = cache.ty().ok();
    let empty = pages.iter().filter(|p| p.map.is_empty()).count();
    let spare = pages
        .iter()
        .filter(|p| p.map.is_empty() && ty.is_some_and(|t| serves(p, t)))
        .count();
    (st, pages.len() - empty, spare)
}
