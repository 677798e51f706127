// SPDX-License-Identifier: GPL-2.0

//! Sub-page slots of executable memory.
//!
//! ftrace trampolines (200 to 400 bytes) and kprobes instruction slots (16 to 128 bytes)
//! each took a whole page of executable memory, or a cache of their own. This allocator
//! hands out slots of any size up to a page, in [`placement::GRANULE`]-byte granules, from
//! pages shared by every user of the same execmem type. The C API is in
//! `include/linux/execslot.h`.
//!
//! - Pages come from `execmem_alloc()` and are read-only and executable from the moment
//!   they are mapped (execmem's ROX cache); where execmem has no ROX cache for the type
//!   (x86-64 only under Xen PV, which lacks PSE), a new page is made ROX with one
//!   `set_memory_rox()`. There is no permission change per slot: contents are only
//!   written with `text_poke_copy_locked()` and `text_poke_set_locked()`.
//! - A new page and a freed slot are filled with INT3. A page whose slots are all free
//!   goes back to execmem after an RCU grace period.
//! - [`__execslot_contains`] and [`__execslot_lookup`] are lock-free: they read a table
//!   of pages sorted by address that writers replace (RCU) and the atomic entries of
//!   [`placement::PageMap`], which give only exact slots. They call nothing, cannot
//!   panic, and are blacklisted for kprobes.
//! - Changes are serialised by one mutex, taken inside `text_mutex`: every function
//!   that changes or writes slots runs with `text_mutex` held (the C wrappers in the
//!   header take it; kprobes holds it already when it prepares a probe).

use core::pin::Pin;
use core::ptr;
use core::sync::atomic::AtomicBool;
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::AtomicU8;
use core::sync::atomic::Ordering;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KBox;
use kernel::alloc::KVec;
use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::code::ENOMEM;
use kernel::error::code::ERANGE;
use kernel::error::Error;
use kernel::error::Result;
use kernel::ffi::c_char;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;
use kernel::pr_warn_once;
use kernel::prelude::*;
use kernel::seq_file::SeqFile;
use kernel::seq_print;
use kernel::sync::global_lock;
use kernel::sync::rcu;
use kernel::workqueue;
use kernel::workqueue::impl_has_work;
use kernel::workqueue::new_work;
use kernel::workqueue::Work;
use kernel::workqueue::WorkItem;

// The crate root resolves modules next to itself, not in `execslot/`.
#[path = "execslot/placement.rs"]
pub mod placement;

use placement::granules_for;
use placement::PageMap;
use placement::GRANULE;
use placement::GRANULES;
use placement::GRANULE_SHIFT;
use placement::PAGE_SIZE;

const __LOG_PREFIX: &[u8] = b"execslot\0";

/// Fill of unused executable memory: INT3.
const INT3: c_int = 0xcc;

/// Owner id of a granule that starts no slot.
const NO_OWNER: u8 = u8::MAX;

/// One page of slots.
struct SlotPage {
    /// Start of the page; page aligned.
    addr: usize,
    /// execmem type the page was allocated with; it also serves the types that
    /// `execmem_same_range()` finds alike.
    ty: bindings::execmem_type,
    map: PageMap,
    /// Index into `State::caches` of the owner of each slot, at its first granule.
    owner: [AtomicU8; GRANULES],
    /// Slots given to `execslot_free_deferred()`, a bit at their first granule; changed
    /// under [`static@STATE`].
    pending: [AtomicU64; BITMAP_WORDS],
    /// Pending slots whose RCU grace period has begun: the reaper frees them next.
    ripe: [AtomicU64; BITMAP_WORDS],
}

/// Words of a bitmap with a bit per granule.
const BITMAP_WORDS: usize = GRANULES / 64;

/// The pages sorted by address, as the lock-free lookups see them.
struct Table {
    pages: KVec<*const SlotPage>,
}

/// Current [`Table`], replaced under [`static@STATE`]; the old one is freed by a
/// [`Retired`] work item after an RCU grace period. Null until the first page is added.
static TABLE: AtomicPtr<Table> = AtomicPtr::new(ptr::null_mut());

/// Names of the caches, by owner id, for the lock-free lookup. Entries are set once,
/// under [`static@STATE`], before the id is stored in any page, and never change.
static NAMES: [AtomicPtr<c_char>; NO_OWNER as usize] =
    [const { AtomicPtr::new(ptr::null_mut()) }; NO_OWNER as usize];

/// The caches, by owner id, for the lock-free kallsyms walk; set with [`NAMES`].
static CACHES: [AtomicPtr<bindings::execslot_cache>; NO_OWNER as usize] =
    [const { AtomicPtr::new(ptr::null_mut()) }; NO_OWNER as usize];

#[derive(Clone, Copy, Default)]
struct Stats {
    /// Live slots.
    slots: usize,
    /// Bytes of the live slots, rounded up to granules.
    bytes_held: usize,
    /// Allocations refused for want of memory.
    failures: usize,
    /// Live slots waiting to be freed after a grace period (`execslot_free_deferred()`).
    pending: usize,
}

struct Cache {
    cache: *const bindings::execslot_cache,
    stats: Stats,
}

struct State {
    caches: KVec<Cache>,
}

// SAFETY: the raw pointers in `State` point to `execslot_cache` structures that C users
// define statically and to pages owned by this allocator; both may be used from any thread.
unsafe impl Send for State {}

global_lock! {
    // SAFETY: `execslot_init()` initialises it before any other use.
    unsafe(uninit) static STATE: Mutex<State> = State { caches: KVec::new() };
}

/// Initialises the allocator; called once from `execmem_init()`.
///
/// # Safety
///
/// Called once, before any other function of this file.
#[export]
pub unsafe extern "C" fn execslot_init() {
    // SAFETY: called once, before any other use of `STATE` (the caller's guarantee).
    unsafe { STATE.init() };
    // SAFETY: as above, for `KALLSYM_HINTS`.
    unsafe { KALLSYM_HINTS.init() };
}

/// Returns the current table; the caller holds the RCU read lock or [`static@STATE`].
#[inline(always)]
fn table<'a>() -> &'a [*const SlotPage] {
    // SAFETY: the caller's guarantee, for the value just loaded.
    unsafe { table_at(TABLE.load(Ordering::Acquire)) }
}

/// The pages of the table `t`, a value of [`TABLE`] (null: no page).
///
/// # Safety
///
/// `t` was loaded from [`TABLE`] inside the RCU read-side critical section that the caller
/// is in (or under [`static@STATE`], which the caller holds).
#[inline(always)]
unsafe fn table_at<'a>(t: *const Table) -> &'a [*const SlotPage] {
    if t.is_null() {
        return &[];
    }
    // SAFETY: a non-null `TABLE` points to a live `Table`: it is freed only after it was
    // replaced and an RCU grace period elapsed, and the caller is inside a read-side
    // critical section (or holds `STATE`, under which tables are replaced).
    unsafe { &(*t).pages }
}

/// The page containing `addr` and the offset of `addr` in it, if any; the caller holds
/// the RCU read lock or [`static@STATE`].
///
/// Inlined, like everything the lookups call, so that the kprobes blacklist entries of
/// the two lookup functions cover all of their code. Cannot panic: no index or
/// arithmetic here can fail.
#[inline(always)]
fn page_of<'a>(addr: usize) -> Option<(&'a SlotPage, usize)> {
    let pages = table();
    // Binary search by hand: calls into core::slice are not blacklisted for kprobes.
    // `lo <= mid < hi <= pages.len() <= isize::MAX`: the wrapping forms never wrap, and
    // keep overflow checks (panics) out of a function that runs in NMI context.
    let (mut lo, mut hi) = (0usize, pages.len());
    while lo < hi {
        let mid = lo.wrapping_add((hi - lo) / 2);
        let &p = pages.get(mid)?;
        // SAFETY: pages in a live table stay allocated for as long as that table does.
        let p = unsafe { &*p };
        if addr < p.addr {
            hi = mid;
            continue;
        }
        let off = addr - p.addr;
        if off >= PAGE_SIZE {
            lo = mid.wrapping_add(1);
        } else {
            return Some((p, off));
        }
    }
    None
}

/// Warns once per call site if `$cond` holds, and gives its value: for states that a
/// bug elsewhere could cause, where a panic (an overflow or bounds check) would take the
/// kernel down from a free or a lookup.
macro_rules! warn_on_once {
    ($cond:expr) => {{
        static WARNED: AtomicBool = AtomicBool::new(false);
        let cond = $cond;
        if cond && !WARNED.swap(true, Ordering::Relaxed) {
            kernel::warn_on!(true);
        }
        cond
    }};
}

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

/// A replaced table, and the page that left it with that change if any, waiting for
/// the RCU grace period that began then; the work item frees them, so that writers,
/// who hold `text_mutex`, never wait for a grace period.
#[pin_data]
struct Retired {
    /// `get_state_synchronize_rcu()` once they were out of [`TABLE`].
    cookie: c_ulong,
    /// The table that was replaced; null if there was none.
    table: *mut Table,
    /// The page that left with the change; null when the change added a page.
    page: *const SlotPage,
    /// Runs [`WorkItem::run()`] on the system workqueue.
    #[pin]
    work: Work<Retired>,
}

impl_has_work! {
    impl HasWork<Self> for Retired { self.work }
}

// SAFETY: the item owns the table and the page: only RCU readers that started before
// they were replaced can still see them, and the item frees them after those are done,
// from whatever thread runs it.
unsafe impl Send for Retired {}

impl WorkItem for Retired {
    type Pointer = Pin<KBox<Retired>>;

    fn run(this: Pin<KBox<Retired>>) {
        // SAFETY: plain call; returns once the grace period of `cookie` has elapsed.
        unsafe { bindings::cond_synchronize_rcu(this.cookie) };
        // SAFETY: the table and page left `TABLE` a grace period ago, and the item is the
        // only owner of both.
        unsafe { free_retired(this.table, this.page) };
    }
}

/// Frees `table` and, unless null, `page` and its memory.
///
/// # Safety
///
/// Neither is in [`TABLE`] any more, an RCU grace period has elapsed since they left it,
/// and the caller owns them: `table` from `KBox::into_raw()` in [`publish()`], `page`
/// from [`new_page()`] with no live slot.
unsafe fn free_retired(table: *mut Table, page: *const SlotPage) {
    if !table.is_null() {
        // SAFETY: the caller's guarantee.
        drop(unsafe { KBox::from_raw(table) });
    }
    if !page.is_null() {
        // SAFETY: the caller's guarantee.
        let page = unsafe { KBox::from_raw(page.cast_mut()) };
        // SAFETY: the page came from `execmem_alloc()` and holds no live slot.
        unsafe { bindings::execmem_free(page.addr as *mut c_void) };
    }
}

/// Replaces the table by `pages`. The old table and `gone`, a page that is not in `pages`
/// any more (or null), are freed after a grace period; on an error nothing changed and
/// `gone` is still the caller's.
fn publish(pages: KVec<*const SlotPage>, gone: *const SlotPage) -> Result {
    let new = KBox::new(Table { pages }, GFP_KERNEL)?;
    let old = TABLE.swap(KBox::into_raw(new), Ordering::AcqRel);
    slots_changed();
    if old.is_null() && gone.is_null() {
        return Ok(());
    }
    // SAFETY: plain call.
    let cookie = unsafe { bindings::get_state_synchronize_rcu() };
    let item = KBox::pin_init(
        pin_init!(Retired {
            cookie,
            table: old,
            page: gone,
            work <- new_work!("execslot::Retired::work"),
        }),
        GFP_KERNEL,
    );
    match item {
        Ok(item) => workqueue::system().enqueue(item),
        Err(_) => {
            // No memory for the work item: wait here, this once.
            rcu::synchronize_rcu();
            // SAFETY: out of `TABLE` for a grace period; `old` came from `publish()`, and
            // `gone` is the caller's empty page, handed over.
            unsafe { free_retired(old, gone) };
        }
    }
    Ok(())
}

/// The current table's pages, copied, with room for one more.
fn copy_table() -> Result<KVec<*const SlotPage>> {
    let cur = table();
    let mut v = KVec::with_capacity(cur.len().checked_add(1).ok_or(ENOMEM)?, GFP_KERNEL)?;
    v.extend_from_slice(cur, GFP_KERNEL)?;
    Ok(v)
}

fn cache_id(state: &mut State, cache: *const bindings::execslot_cache) -> Result<usize> {
    if let Some(i) = state.caches.iter().position(|c| ptr::eq(c.cache, cache)) {
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
    // SAFETY: `cache` is a valid `execslot_cache` that lives as long as the kernel.
    NAMES[id].store(unsafe { (*cache).name }.cast_mut(), Ordering::Release);
    CACHES[id].store(cache.cast_mut(), Ordering::Release);
    Ok(id)
}

/// Allocates a page of `ty`, fills it with INT3 and adds it to the table.
fn new_page(ty: bindings::execmem_type) -> Result<&'static SlotPage> {
    // SAFETY: plain allocation call.
    let mem = unsafe { bindings::execmem_alloc(ty, PAGE_SIZE) };
    if mem.is_null() {
        return Err(ENOMEM);
    }
    let addr = mem as usize;
    // A slot's address is the page's ORed with an offset below a page.
    if addr % PAGE_SIZE != 0 {
        // SAFETY: `mem` came from `execmem_alloc()` and was never published.
        unsafe { bindings::execmem_free(mem) };
        return Err(EINVAL);
    }
    let page = KBox::new(
        SlotPage {
            addr,
            ty,
            map: PageMap::new(),
            owner: [const { AtomicU8::new(NO_OWNER) }; GRANULES],
            pending: [const { AtomicU64::new(0) }; BITMAP_WORDS],
            ripe: [const { AtomicU64::new(0) }; BITMAP_WORDS],
        },
        GFP_KERNEL,
    );
    let mut pages = match (page, copy_table()) {
        (Ok(page), Ok(pages)) => (page, pages),
        _ => {
            // SAFETY: `mem` came from `execmem_alloc()` and was never published.
            unsafe { bindings::execmem_free(mem) };
            return Err(ENOMEM);
        }
    };
    // Without a ROX cache for this type (on x86-64 only under Xen PV, which lacks PSE) the
    // page may come writable: make it ROX once, here, as create_trampoline() did for each
    // trampoline.
    // SAFETY: plain calls on a page that nothing uses yet; execmem_free() restores its
    // permissions (VM_FLUSH_RESET_PERMS) when it is given back.
    if !unsafe { bindings::execmem_is_rox(ty) } {
        // SAFETY: as above.
        let ret = unsafe { bindings::set_memory_rox(addr, 1) };
        if ret != 0 {
            // SAFETY: `mem` came from `execmem_alloc()` and was never published.
            unsafe { bindings::execmem_free(mem) };
            return Err(Error::from_errno(ret));
        }
    }
    // SAFETY: `mem` is a fresh page of executable memory that nothing uses yet.
    unsafe { bindings::text_poke_set_locked(mem, INT3, PAGE_SIZE) };
    let raw = KBox::into_raw(pages.0);
    let at = pages.1.iter().position(|&p| {
        // SAFETY: pages in the table are live while `STATE` is held.
        let a = unsafe { (*p).addr };
        a > addr
    });
    let at = at.unwrap_or(pages.1.len());
    if pages.1.insert_within_capacity(at, raw).is_err() || publish(pages.1, ptr::null()).is_err() {
        // SAFETY: `raw` and `mem` were never published.
        unsafe {
            drop(KBox::from_raw(raw));
            bindings::execmem_free(mem);
        }
        return Err(ENOMEM);
    }
    // SAFETY: the page stays allocated until it is removed from the table, which only
    // happens under `STATE` once it is empty; callers drop this reference before that.
    Ok(unsafe { &*raw })
}

/// Whether `fail_execslot` fault injection fails this allocation.
#[cfg(CONFIG_FAIL_EXECSLOT)]
fn should_fail(size: usize) -> bool {
    // SAFETY: plain call; `should_fail()` may be called in any context.
    unsafe { bindings::execslot_should_fail(size) }
}

#[cfg(not(CONFIG_FAIL_EXECSLOT))]
fn should_fail(_size: usize) -> bool {
    false
}

/// Allocates a slot; the caller holds `text_mutex`.
fn alloc(cache: *const bindings::execslot_cache, size: usize) -> Result<usize> {
    let n = granules_for(size).map_err(|_| EINVAL)?;
    let mut state = STATE.lock();
    let id = cache_id(&mut state, cache)?;
    if should_fail(size) {
        add_count(&mut state.caches[id].stats.failures, 1);
        return Err(ENOMEM);
    }
    // SAFETY: `cache` is a valid `execslot_cache`.
    let ty = unsafe { (*cache).type_ };

    // Best fit over all pages of the same type: the tightest free run wins.
    let mut best: Option<(&SlotPage, usize, usize)> = None;
    for &p in table() {
        // SAFETY: pages in the table are live while `STATE` is held.
        let p = unsafe { &*p };
        // SAFETY: plain call, comparing two execmem types' parameters.
        if p.ty != ty && !unsafe { bindings::execmem_same_range(p.ty, ty) } {
            continue;
        }
        if let Some((first, run)) = p.map.find(n) {
            if best.is_none_or(|(_, _, r)| run < r) {
                best = Some((p, first, run));
            }
        }
    }
    let (page, first) = match best {
        Some((p, first, _)) => (p, first),
        None => match new_page(ty) {
            Ok(p) => (p, 0),
            Err(e) => {
                add_count(&mut state.caches[id].stats.failures, 1);
                return Err(e);
            }
        },
    };
    // id < NO_OWNER, checked by cache_id().
    page.set_owner(first, id as u8);
    page.map.mark(first, n);
    slots_changed();
    let addr = page.granule_addr(first);
    // SAFETY: `cache` is a valid `execslot_cache`.
    if unsafe { (*cache).perf_ksymbol } {
        // SAFETY: plain call, announcing the new slot; `cache` is valid.
        unsafe {
            bindings::execslot_perf_ksymbol(cache, addr, (n << GRANULE_SHIFT) as c_uint, false)
        };
    }
    let st = &mut state.caches[id].stats;
    add_count(&mut st.slots, 1);
    add_count(&mut st.bytes_held, n * GRANULE);
    Ok(addr)
}

/// Writes into a slot; the caller holds `text_mutex`.
fn write(slot: usize, offset: usize, src: *const c_void, len: usize) -> Result {
    let _state = STATE.lock();
    let (page, rel) = page_of(slot).ok_or(EINVAL)?;
    let (off, size) = page.map.slot_at_offset(rel).ok_or(EINVAL)?;
    if off != rel || offset > size || len > size - offset {
        return Err(EINVAL);
    }
    if len > 0 {
        // SAFETY: `[slot + offset, slot + offset + len)` lies inside a live slot, and the
        // caller provides `len` readable bytes at `src`.
        unsafe { bindings::text_poke_copy_locked((slot + offset) as *mut c_void, src, len, false) };
    }
    Ok(())
}

/// Frees a slot; the caller holds `text_mutex`.
fn free(slot: usize) -> Result {
    let mut state = STATE.lock();
    let (page, rel) = page_of(slot).ok_or(EINVAL)?;
    let (off, size) = page.map.slot_at_offset(rel).ok_or(EINVAL)?;
    if off != rel {
        return Err(EINVAL);
    }
    let first = off / GRANULE;
    if page.is_pending(first) {
        return Err(EINVAL);
    }
    let id = page.owner(first);
    if let Some(c) = state.caches.get(id) {
        // SAFETY: `c.cache` is a valid `execslot_cache`.
        if unsafe { (*c.cache).perf_ksymbol } {
            // SAFETY: plain call: the slot's end, before it leaves the lookups.
            unsafe { bindings::execslot_perf_ksymbol(c.cache, slot, size as c_uint, true) };
        }
    }
    // SAFETY: the slot is live and, as the caller guarantees, no longer executed.
    unsafe { bindings::text_poke_set_locked(slot as *mut c_void, INT3, size) };
    page.map.free(first, size / GRANULE).map_err(|_| EINVAL)?;
    page.set_owner(first, NO_OWNER);
    slots_changed();
    if let Some(c) = state.caches.get_mut(id) {
        sub_count(&mut c.stats.slots, 1);
        sub_count(&mut c.stats.bytes_held, size);
    }
    if !page.map.is_empty() {
        return Ok(());
    }
    // The page is empty: it leaves the table, and goes back to execmem once no lookup
    // can still be looking at it. Without memory for a new table it stays, empty, for
    // the next allocation.
    if unpublish(page).is_err() {
        pr_warn_once!("keeping an empty page: no memory for a new table\n");
    }
    Ok(())
}

/// Takes `page`, which holds no slot, out of the table; it is freed after a grace period.
fn unpublish(page: &SlotPage) -> Result {
    let raw: *const SlotPage = page;
    let mut pages = copy_table()?;
    let i = pages.iter().position(|&p| ptr::eq(p, raw)).ok_or(EINVAL)?;
    pages.remove(i).map_err(|_| EINVAL)?;
    publish(pages, raw)
}

impl SlotPage {
    /// Whether the slot starting at granule `g` waits for the reaper.
    fn is_pending(&self, g: usize) -> bool {
        let bit = 1u64 << (g % 64);
        let word =
            |b: &[AtomicU64; BITMAP_WORDS]| b.get(g / 64).map_or(0, |w| w.load(Ordering::Relaxed));
        (word(&self.pending) | word(&self.ripe)) & bit != 0
    }

    /// Owner id of the slot that starts at granule `g`; [`NO_OWNER`] for any other `g`.
    #[inline(always)]
    fn owner(&self, g: usize) -> usize {
        self.owner
            .get(g)
            .map_or(NO_OWNER, |o| o.load(Ordering::Relaxed)) as usize
    }

    /// Address of granule `g` of the page: no carry, since the page is page aligned.
    #[inline(always)]
    fn granule_addr(&self, g: usize) -> usize {
        self.addr | ((g % GRANULES) << GRANULE_SHIFT)
    }

    /// Records `id` as the owner of the slot that starts at granule `g`.
    fn set_owner(&self, g: usize, id: u8) {
        if let Some(o) = self.owner.get(g) {
            o.store(id, Ordering::Relaxed);
        }
    }
}

/// Marks a slot to be freed after an RCU grace period; the caller may hold `text_mutex`.
fn free_deferred(slot: usize) -> Result {
    let mut state = STATE.lock();
    let (page, rel) = page_of(slot).ok_or(EINVAL)?;
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
    drop(state);
    // SAFETY: plain call; queues the reaper work.
    unsafe { bindings::execslot_schedule_reap() };
    Ok(())
}

/// First step of the reaper: what is pending now becomes ripe, then the caller waits
/// for a grace period.
fn reap_begin() {
    let _state = STATE.lock();
    for &p in table() {
        // SAFETY: pages in the table are live while `STATE` is held.
        let p = unsafe { &*p };
        for w in 0..BITMAP_WORDS {
            let bits = p.pending[w].swap(0, Ordering::Relaxed);
            p.ripe[w].fetch_or(bits, Ordering::Relaxed);
        }
    }
}

/// Takes one ripe slot off its bitmap and the pending count; the caller frees it.
fn take_ripe() -> Option<usize> {
    let mut state = STATE.lock();
    for &p in table() {
        // SAFETY: pages in the table are live while `STATE` is held.
        let p = unsafe { &*p };
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

/// Prints `/sys/kernel/debug/execslot/stats`: the pages held, then per cache the pages
/// it has slots in (shared pages count for every cache in them), its live slots, the
/// bytes they hold, the allocations refused for want of memory and the slots waiting
/// for a grace period.
fn stats_show(m: &SeqFile) {
    let state = STATE.lock();
    let pages = table();
    seq_print!(
        m,
        "pages: {} ({} bytes)\n",
        pages.len(),
        pages.len().saturating_mul(PAGE_SIZE)
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
            .filter(|&&p| {
                // SAFETY: pages in the table are live while `STATE` is held.
                let p = unsafe { &*p };
                (0..GRANULES).any(|g| p.owner(g) == id)
            })
            .count();
        // SAFETY: `c.cache` is a valid `execslot_cache`, its name a C string that lives as
        // long as the kernel.
        let name = unsafe { CStr::from_char_ptr((*c.cache).name) };
        seq_print!(
            m,
            "{:<24} {:>6} {:>8} {:>10} {:>9} {:>8}\n",
            name.to_str().unwrap_or("?"),
            held,
            c.stats.slots,
            c.stats.bytes_held,
            c.stats.failures,
            c.stats.pending
        );
    }
}

/// Prints `/sys/kernel/debug/execslot/slots`: every live slot, by address, with its size
/// and its cache's name. Addresses are zero unless `show_addr`, which the C side decides
/// with `kallsyms_show_value()` for the file's opener, as `/proc/kallsyms` and kprobes'
/// `list` do.
fn slots_show(m: &SeqFile, show_addr: bool) {
    let state = STATE.lock();
    for &p in table() {
        // SAFETY: pages in the table are live while `STATE` is held.
        let p = unsafe { &*p };
        for (first, n) in p.map.each_slot() {
            let name = state.caches.get(p.owner(first)).map_or(c"?", |c| {
                // SAFETY: `c.cache` is a valid `execslot_cache`, its name a C string that
                // lives as long as the kernel.
                unsafe { CStr::from_char_ptr((*c.cache).name) }
            });
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

/// Shows `/sys/kernel/debug/execslot/stats` (`mm/execmem.c` owns the file).
///
/// # Safety
///
/// `m` is the `seq_file` of a `show` callback, used by no other thread meanwhile.
#[export]
pub unsafe extern "C" fn execslot_seq_stats(m: *mut bindings::seq_file) {
    // SAFETY: the caller's guarantee, for the duration of this call.
    stats_show(unsafe { SeqFile::from_raw(m) });
}

/// Shows `/sys/kernel/debug/execslot/slots` (`mm/execmem.c` owns the file).
///
/// # Safety
///
/// `m` is the `seq_file` of a `show` callback, used by no other thread meanwhile.
#[export]
pub unsafe extern "C" fn execslot_seq_slots(m: *mut bindings::seq_file, show_addr: bool) {
    // SAFETY: the caller's guarantee, for the duration of this call.
    slots_show(unsafe { SeqFile::from_raw(m) }, show_addr);
}

/// Statistics of `cache` and the number of pages held, for the tests.
#[cfg(CONFIG_KUNIT = "y")]
fn stats(cache: *const bindings::execslot_cache) -> (Stats, usize) {
    let state = STATE.lock();
    let st = state
        .caches
        .iter()
        .find(|c| ptr::eq(c.cache, cache))
        .map_or(Stats::default(), |c| c.stats);
    (st, table().len())
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
/// long as the kernel; `slot` is valid for a write.
#[export]
pub unsafe extern "C" fn execslot_alloc_locked(
    cache: *mut bindings::execslot_cache,
    size: usize,
    slot: *mut *mut c_void,
) -> c_int {
    match alloc(cache, size) {
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
/// The caller holds `text_mutex`; `src` is valid for reading `len` bytes.
#[export]
pub unsafe extern "C" fn execslot_write_locked(
    slot: *mut c_void,
    offset: usize,
    src: *const c_void,
    len: usize,
) -> c_int {
    to_errno(write(slot as usize, offset, src, len))
}

/// C entry point of `execslot_free_locked()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller holds `text_mutex`, and nothing executes the slot any more.
#[export]
pub unsafe extern "C" fn execslot_free_locked(slot: *mut c_void) -> c_int {
    to_errno(free(slot as usize))
}

/// C entry point of `execslot_free_deferred()`; see `include/linux/execslot.h`.
///
/// # Safety
///
/// No new user reaches the slot any more.
#[export]
pub unsafe extern "C" fn execslot_free_deferred(slot: *mut c_void) -> c_int {
    to_errno(free_deferred(slot as usize))
}

/// First step of the reaper work (`mm/execmem.c`).
///
/// # Safety
///
/// Called from the reaper work only.
#[export]
pub unsafe extern "C" fn execslot_reap_begin() {
    reap_begin();
}

/// Last step of the reaper work, after a grace period since `execslot_reap_begin()`.
///
/// # Safety
///
/// Called from the reaper work only, with `text_mutex` held.
#[export]
pub unsafe extern "C" fn execslot_reap_locked() {
    while let Some(slot) = take_ripe() {
        if free(slot).is_err() {
            pr_warn_once!("cannot free deferred slot {:#x}\n", slot);
        }
    }
}

/// Where a kallsyms walk of one cache stopped, valid while [`GEN`] is `gen` and the table
/// is the one at `table`: the walk of `/proc/kallsyms` asks for symbols 0, 1, 2, ... in
/// turn, and each one continues from the last instead of counting the slots again from
/// the first page, so reading the whole file is linear in the number of slots while no
/// slot comes or goes.
#[derive(Clone, Copy)]
struct Hint {
    gen: u64,
    /// Address of the [`Table`] that `page` indexes.
    table: usize,
    /// Owner id of the cache.
    id: usize,
    /// Index of the slot found last, and where it is: a page of the table and a granule.
    symnum: u32,
    page: usize,
    granule: usize,
    /// How many slots the cache has, once a walk has passed them all.
    total: Option<u32>,
}

/// Kallsyms hints, a few caches at a time (by owner id); none is valid at first.
const HINTS: usize = 8;

global_lock! {
    // SAFETY: `execslot_init()` initialises it before any other use.
    unsafe(uninit) static KALLSYM_HINTS: SpinLock<[Hint; HINTS]> = [Hint {
        gen: u64::MAX,
        table: 0,
        id: usize::MAX,
        symnum: 0,
        page: 0,
        granule: 0,
        total: None,
    }; HINTS];
}

/// Changes whenever a slot comes or goes, or the table is replaced: a [`Hint`] taken
/// under another value is stale, and a walk during which it changed leaves no hint.
static GEN: AtomicU64 = AtomicU64::new(0);

/// Marks every kallsyms hint stale; called under [`static@STATE`] after each change.
fn slots_changed() {
    GEN.fetch_add(1, Ordering::Release);
}

/// The `*symnum`-th slot of `cache`, for kallsyms; see `include/linux/execslot.h`.
///
/// # Safety
///
/// The caller holds the RCU read lock; the pointers are valid.
#[export]
pub unsafe extern "C" fn __execslot_get_kallsym(
    cache: *const bindings::execslot_cache,
    symnum: *mut c_uint,
    value: *mut usize,
    size: *mut usize,
) -> c_int {
    let Some(id) = CACHES
        .iter()
        .position(|c| ptr::eq(c.load(Ordering::Acquire), cache))
    else {
        return ERANGE.to_errno();
    };
    // SAFETY: the caller provides valid pointers.
    let want = unsafe { *symnum };
    let gen = GEN.load(Ordering::Acquire);
    let t = TABLE.load(Ordering::Acquire);
    // Continue from this cache's hint if nothing changed since, in this very table; a
    // contended lock only means a walk from the start.
    let hint = KALLSYM_HINTS
        .try_lock()
        .and_then(|h| h.get(id % HINTS).copied())
        .filter(|h| h.gen == gen && h.table == t as usize && h.id == id && h.symnum <= want);
    if let Some(total) = hint.and_then(|h| h.total) {
        if let Some(left) = want.checked_sub(total) {
            // SAFETY: as above.
            unsafe { *symnum = left };
            return ERANGE.to_errno();
        }
    }
    let (from_page, from_granule, mut left) = hint.map_or((0, 0, want), |h| {
        (h.page, h.granule, want.saturating_sub(h.symnum))
    });
    let mut found = None;
    // SAFETY: the caller holds the RCU read lock.
    let pages = unsafe { table_at(t) };
    let mut i = from_page;
    'walk: while let Some(&p) = pages.get(i) {
        // SAFETY: pages in a live table stay allocated for as long as that table does.
        let p = unsafe { &*p };
        let (this, from) = (i, if i == from_page { from_granule } else { 0 });
        // Cannot wrap: `i < pages.len()`.
        i = i.wrapping_add(1);
        for (first, n) in p.map.each_slot_from(from) {
            if p.owner(first) != id {
                continue;
            }
            match left.checked_sub(1) {
                None => {
                    found = Some((this, first, p.granule_addr(first), n << GRANULE_SHIFT));
                    break 'walk;
                }
                Some(l) => left = l,
            }
        }
    }
    let new = match found {
        Some((page, granule, _, _)) => Hint {
            gen,
            table: t as usize,
            id,
            symnum: want,
            page,
            granule,
            total: hint.and_then(|h| h.total),
        },
        None => Hint {
            gen,
            table: t as usize,
            id,
            symnum: hint.map_or(0, |h| h.symnum),
            page: hint.map_or(0, |h| h.page),
            granule: hint.map_or(0, |h| h.granule),
            total: Some(want.saturating_sub(left)),
        },
    };
    // A walk that overlapped a change may have seen some of it: remember none of it.
    if GEN.load(Ordering::Acquire) == gen {
        if let Some(mut h) = KALLSYM_HINTS.try_lock() {
            if let Some(slot) = h.get_mut(id % HINTS) {
                *slot = new;
            }
        }
    }
    // SAFETY: as above.
    unsafe {
        match found {
            Some((_, _, addr, len)) => {
                *value = addr;
                *size = len;
                0
            }
            None => {
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
/// The caller holds the RCU read lock.
#[export]
pub unsafe extern "C" fn __execslot_contains(addr: usize) -> bool {
    match page_of(addr) {
        Some((p, off)) => p.map.is_used(off / GRANULE),
        None => false,
    }
}

/// Lock-free: the live slot around `addr`, and its cache's name.
///
/// # Safety
///
/// The caller holds the RCU read lock; the output pointers are valid for writes.
#[export]
pub unsafe extern "C" fn __execslot_lookup(
    addr: usize,
    start: *mut usize,
    size: *mut usize,
    name: *mut *const c_char,
) -> bool {
    let Some((p, rel)) = page_of(addr) else {
        return false;
    };
    let Some((first, n)) = p.map.slot_at(rel >> GRANULE_SHIFT) else {
        return false;
    };
    let cache_name = NAMES
        .get(p.owner(first))
        .map_or(ptr::null_mut(), |n| n.load(Ordering::Acquire));
    // SAFETY: the caller provides valid output pointers.
    unsafe {
        *start = p.granule_addr(first);
        *size = n << GRANULE_SHIFT;
        *name = cache_name;
    }
    true
}

/// Keeps kprobes off the lookups, as `NOKPROBE_SYMBOL()` does for C: they run from the
/// unwinder, possibly in a kprobe handler or in NMI context.
#[used(compiler)]
#[link_section = "_kprobe_blacklist"]
static KPROBE_BLACKLIST: [unsafe extern "C" fn(usize) -> bool; 1] = [__execslot_contains];

#[used(compiler)]
#[link_section = "_kprobe_blacklist"]
static KPROBE_BLACKLIST_LOOKUP: [unsafe extern "C" fn(
    usize,
    *mut usize,
    *mut usize,
    *mut *const c_char,
) -> bool; 1] = [__execslot_lookup];

#[kernel::macros::kunit_tests(execslot_placement)]
mod tests {
    use super::placement::*;

    #[test]
    fn granule_rounding() {
        assert_eq!(granules_for(0), Err(PlacementError::BadSize));
        assert_eq!(granules_for(15), Ok(1));
        assert_eq!(granules_for(300), Ok(19));
        assert_eq!(granules_for(PAGE_SIZE), Ok(GRANULES));
        assert_eq!(granules_for(PAGE_SIZE + 1), Err(PlacementError::BadSize));
    }

    #[test]
    fn fill_page_with_smallest_slots() {
        let m = PageMap::new();
        let mut n = 0;
        while let Some(g) = m.alloc(1) {
            assert_eq!(g, n);
            n += 1;
        }
        assert_eq!(n, GRANULES);
        assert_eq!(m.slots(), GRANULES);
        for g in 0..GRANULES {
            assert_eq!(m.free(g, 1), Ok(()));
        }
        assert!(m.is_empty());
    }

    #[test]
    fn lookup_edges_and_bad_free() {
        let m = PageMap::new();
        assert_eq!(m.alloc(19), Some(0));
        assert_eq!(m.alloc(19), Some(19));
        let (off, size) = (19 * GRANULE, 19 * GRANULE);
        assert_eq!(m.slot_at_offset(off), Some((off, size)));
        assert_eq!(m.slot_at_offset(off + size - 1), Some((off, size)));
        assert_eq!(m.slot_at_offset(off + size), None);
        assert_eq!(m.free(20, 18), Err(PlacementError::NotASlot));
        assert_eq!(m.free(19, 19), Ok(()));
        assert_eq!(m.slot_at_offset(off), None);
        assert_eq!(m.slot_at_offset(off - 1), Some((0, size)));
    }

    /// One CPU looks up every granule near the slots that another CPU allocates and
    /// frees, with random sizes, in the same page: every answer is `None` or a slot
    /// exactly as it was marked, never two neighbours merged or a part of one, and a slot
    /// that stays live (pinned in the middle, its neighbours changing) is always found.
    #[test]
    fn lookups_race_with_changes() -> kernel::error::Result {
        use core::sync::atomic::AtomicBool;
        use core::sync::atomic::AtomicU64;
        use core::sync::atomic::AtomicUsize;
        use core::sync::atomic::Ordering;
        use kernel::alloc::flags::GFP_KERNEL;
        use kernel::alloc::KBox;
        use kernel::init::InPlaceInit;
        use kernel::sync::Arc;
        use kernel::sync::Completion;

        /// The pinned slot, live throughout.
        const PIN: (usize, usize) = (40, 2);
        /// Slots are placed in the first `LIMIT` granules, around the pinned one.
        const LIMIT: usize = 82;
        /// Longest slot, in granules.
        const MAX: usize = 8;

        struct Shared {
            map: PageMap,
            /// Bit `n - 1` of word `first`: a slot (first, n) was marked.
            marked: [AtomicU64; LIMIT],
            stop: AtomicBool,
            checked: AtomicUsize,
            wrong: AtomicUsize,
            pin_missed: AtomicUsize,
        }

        let shared = Arc::new(
            Shared {
                map: PageMap::new(),
                marked: [const { AtomicU64::new(0) }; LIMIT],
                stop: AtomicBool::new(false),
                checked: AtomicUsize::new(0),
                wrong: AtomicUsize::new(0),
                pin_missed: AtomicUsize::new(0),
            },
            GFP_KERNEL,
        )?;
        shared.map.mark(PIN.0, PIN.1);
        let started = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let (s, st, d) = (shared.clone(), started.clone(), done.clone());
        // Unbound: the reader runs on whichever CPU is free, the other one on a
        // two-CPU machine, while this thread changes the slots.
        kernel::workqueue::system_unbound().try_spawn(GFP_KERNEL, move || {
            st.complete_all();
            while !s.stop.load(Ordering::Relaxed) {
                for g in 0..LIMIT + 1 {
                    let got = s.map.slot_at(g);
                    if (PIN.0..PIN.0 + PIN.1).contains(&g) {
                        if got != Some(PIN) {
                            s.pin_missed.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some((first, n)) = got {
                        // The record of (first, n) precedes its marking.
                        let ok = first <= g
                            && g < first + n
                            && (1..=MAX).contains(&n)
                            && s.marked
                                .get(first)
                                .is_some_and(|w| w.load(Ordering::Acquire) & (1 << (n - 1)) != 0);
                        if !ok {
                            s.wrong.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    s.checked.fetch_add(1, Ordering::Relaxed);
                }
            }
            d.complete_all();
        })?;
        started.wait_for_completion();

        // Up to eight slots live at a time, freed and replaced in random order.
        let mut live: KBox<[(usize, usize); 8]> = KBox::new([(0, 0); 8], GFP_KERNEL)?;
        let mut seed: u32 = 0x1234_5678;
        let mut changes = 0usize;
        while changes < 200_000 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let k = (seed >> 16) as usize % live.len();
            let (first, n) = live[k];
            if n != 0 {
                assert_eq!(shared.map.free(first, n), Ok(()));
                live[k] = (0, 0);
            }
            let n = 1 + (seed >> 8) as usize % MAX;
            if let Some((first, _)) = shared.map.find(n) {
                if first + n <= LIMIT {
                    shared.marked[first].fetch_or(1 << (n - 1), Ordering::Release);
                    shared.map.mark(first, n);
                    live[k] = (first, n);
                }
            }
            changes += 1;
        }
        shared.stop.store(true, Ordering::Relaxed);
        done.wait_for_completion();
        kernel::pr_info!(
            "{} changes, {} lookups checked\n",
            changes,
            shared.checked.load(Ordering::Relaxed)
        );
        assert_eq!(shared.wrong.load(Ordering::Relaxed), 0);
        assert_eq!(shared.pin_missed.load(Ordering::Relaxed), 0);
        assert!(shared.checked.load(Ordering::Relaxed) > LIMIT);
        Ok(())
    }
}

#[kernel::macros::kunit_tests(execslot)]
mod alloc_tests {
    use super::*;

    /// Holds `text_mutex`, as the C wrappers of the header do around the calls below.
    struct TextLock;

    impl TextLock {
        fn new() -> Self {
            // SAFETY: `text_mutex` is a statically initialised mutex.
            unsafe { bindings::mutex_lock(&raw mut bindings::text_mutex) };
            TextLock
        }
    }

    impl Drop for TextLock {
        fn drop(&mut self) {
            // SAFETY: this task took `text_mutex` in `TextLock::new()`.
            unsafe { bindings::mutex_unlock(&raw mut bindings::text_mutex) };
        }
    }

    fn alloc(cache: *const bindings::execslot_cache, size: usize) -> Result<usize> {
        let _text = TextLock::new();
        super::alloc(cache, size)
    }

    fn write(slot: usize, offset: usize, src: *const c_void, len: usize) -> Result {
        let _text = TextLock::new();
        super::write(slot, offset, src, len)
    }

    fn free(slot: usize) -> Result {
        let _text = TextLock::new();
        super::free(slot)
    }

    struct TestCache(bindings::execslot_cache);

    // SAFETY: the cache is never written after its definition.
    unsafe impl Sync for TestCache {}

    static TEST: TestCache = TestCache(bindings::execslot_cache {
        name: kernel::str::as_char_ptr_in_const_context(c"execslot_test"),
        type_: bindings::execmem_type_EXECMEM_KPROBES,
        perf_ksymbol: false,
    });

    fn cache() -> *const bindings::execslot_cache {
        &TEST.0
    }

    fn contains(addr: usize) -> bool {
        let _guard = rcu::read_lock();
        // SAFETY: the RCU read lock is held.
        unsafe { __execslot_contains(addr) }
    }

    fn lookup(addr: usize) -> Option<(usize, usize)> {
        let _guard = rcu::read_lock();
        let (mut start, mut size, mut name) = (0, 0, ptr::null());
        // SAFETY: the RCU read lock is held and the outputs are valid.
        let found = unsafe { __execslot_lookup(addr, &mut start, &mut size, &mut name) };
        found.then_some((start, size))
    }

    /// Reads the byte at `addr`, which lies in a mapped slot page.
    fn byte(addr: usize) -> u8 {
        // SAFETY: the caller passes an address inside a page this allocator holds.
        unsafe { ptr::read_volatile(addr as *const u8) }
    }

    #[test]
    fn sizes_alignment_and_rounding() -> Result {
        let before = stats(cache());
        for size in [1, 15, 16, 17, 124, 300, 385, PAGE_SIZE - 16, PAGE_SIZE] {
            let a = alloc(cache(), size)?;
            assert_eq!(a % GRANULE, 0);
            assert_eq!(lookup(a), Some((a, size.div_ceil(GRANULE) * GRANULE)));
            assert_eq!(stats(cache()).0.slots, before.0.slots + 1);
            free(a)?;
        }
        assert_eq!(stats(cache()).0.slots, before.0.slots);
        assert_eq!(stats(cache()).0.bytes_held, before.0.bytes_held);
        Ok(())
    }

    #[test]
    fn bad_sizes_and_bad_frees() -> Result {
        assert_eq!(alloc(cache(), 0), Err(EINVAL));
        assert_eq!(alloc(cache(), PAGE_SIZE + 1), Err(EINVAL));
        assert_eq!(alloc(cache(), usize::MAX), Err(EINVAL));
        let a = alloc(cache(), 64)?;
        assert_eq!(free(a + GRANULE), Err(EINVAL));
        assert_eq!(free(0), Err(EINVAL));
        free(a)?;
        assert_eq!(free(a), Err(EINVAL));
        Ok(())
    }

    #[test]
    fn lookup_edges() -> Result {
        let keep = alloc(cache(), 16)?;
        let a = alloc(cache(), 300)?;
        let size = 304;
        assert!(contains(a));
        assert!(contains(a + size - 1));
        assert_eq!(lookup(a + size - 1), Some((a, size)));
        assert!(!contains(a + size) || lookup(a + size).map(|(s, _)| s) != Some(a));
        assert!(!contains(a - 1) || lookup(a - 1).map(|(s, _)| s) != Some(a));
        free(a)?;
        assert!(!contains(a));
        assert_eq!(lookup(a), None);
        free(keep)?;
        Ok(())
    }

    #[test]
    fn write_read_back_and_int3_after_free() -> Result {
        // A neighbour keeps the page mapped after the slot under test is freed.
        let keep = alloc(cache(), 16)?;
        let a = alloc(cache(), 48)?;
        for i in 0..48 {
            assert_eq!(byte(a + i), 0xcc);
        }
        let data = [0x90u8; 40];
        assert_eq!(write(a, 8, data.as_ptr().cast(), data.len()), Ok(()));
        assert_eq!(byte(a + 7), 0xcc);
        assert_eq!(byte(a + 8), 0x90);
        assert_eq!(byte(a + 47), 0x90);
        assert_eq!(write(a, 9, data.as_ptr().cast(), data.len()), Err(EINVAL));
        assert_eq!(write(a + 16, 0, data.as_ptr().cast(), 1), Err(EINVAL));
        free(a)?;
        for i in 0..48 {
            assert_eq!(byte(a + i), 0xcc);
        }
        free(keep)?;
        Ok(())
    }

    #[test]
    fn reuse_after_free() -> Result {
        let keep = alloc(cache(), 16)?;
        let a = alloc(cache(), 200)?;
        free(a)?;
        let b = alloc(cache(), 200)?;
        assert_eq!(a, b);
        free(b)?;
        free(keep)?;
        Ok(())
    }

    #[test]
    fn page_released_when_empty() -> Result {
        let (_, pages) = stats(cache());
        // A whole page can only come from a new page.
        let a = alloc(cache(), PAGE_SIZE)?;
        assert_eq!(stats(cache()).1, pages + 1);
        assert!(contains(a));
        free(a)?;
        assert_eq!(stats(cache()).1, pages);
        assert!(!contains(a));
        Ok(())
    }

    /// A deferred free keeps the slot live until the reaper ran after a grace period;
    /// meanwhile the slot cannot be freed again.
    #[test]
    fn deferred_free() -> Result {
        let (before, pages) = stats(cache());
        let a = alloc(cache(), 100)?;
        {
            // The reaper frees with text_mutex held: holding it here keeps the slot
            // pending for the checks below, whenever the work runs.
            let _text = TextLock::new();
            // SAFETY: `a` is a live slot that nothing executes.
            assert_eq!(unsafe { execslot_free_deferred(a as *mut c_void) }, 0);
            assert!(contains(a));
            assert_eq!(stats(cache()).0.pending, before.pending + 1);
            assert_eq!(super::free(a), Err(EINVAL));
            // SAFETY: as above; refused, since it waits already.
            let again = unsafe { execslot_free_deferred(a as *mut c_void) };
            assert_eq!(again, EINVAL.to_errno());
        }
        // SAFETY: plain call; waits for the reaper work.
        unsafe { bindings::execslot_flush_deferred() };
        assert!(!contains(a));
        let (after, pages_after) = stats(cache());
        assert_eq!(after.slots, before.slots);
        assert_eq!(after.pending, before.pending);
        assert_eq!(pages_after, pages);
        Ok(())
    }

    /// The kallsyms walk visits exactly the cache's slots, in address order, and
    /// counts them off `symnum`.
    #[test]
    fn kallsyms_walk() -> Result {
        let walk = |n: u32| {
            let _guard = rcu::read_lock();
            let (mut symnum, mut value, mut size) = (n, 0, 0);
            // SAFETY: the RCU read lock is held; the outputs are valid.
            let ret =
                unsafe { __execslot_get_kallsym(cache(), &mut symnum, &mut value, &mut size) };
            (ret, symnum, value, size)
        };
        let (ret, left, _, _) = walk(u32::MAX);
        assert_eq!(ret, ERANGE.to_errno());
        let had = u32::MAX - left;
        // (address, rounded size), sorted by address.
        let mut slots = [
            (alloc(cache(), 20)?, 32),
            (alloc(cache(), 200)?, 208),
            (alloc(cache(), 2000)?, 2000),
        ];
        slots.sort_unstable();
        let mut seen = 0;
        let mut last = 0;
        for n in 0..had + 3 {
            let (ret, _, value, size) = walk(n);
            assert_eq!(ret, 0);
            assert!(value > last);
            last = value;
            if let Some(&(_, want)) = slots.iter().find(|&&(a, _)| a == value) {
                assert_eq!(size, want);
                seen += 1;
            }
        }
        assert_eq!(seen, 3);
        let (ret, left, _, _) = walk(had + 3);
        assert_eq!((ret, left), (ERANGE.to_errno(), 0));
        for (a, _) in slots {
            free(a)?;
        }
        Ok(())
    }

    /// Memory per object for a small and a trampoline-sized object: 512 of them take no
    /// more pages than best fit allows, and the accounting covers exactly their bytes.
    #[test]
    fn bytes_per_object() -> Result {
        const N: usize = 512;
        for size in [15usize, 300] {
            let rounded = size.div_ceil(GRANULE) * GRANULE;
            let (before, pages) = stats(cache());
            let mut slots = KVec::with_capacity(N, GFP_KERNEL)?;
            for _ in 0..N {
                slots.push(alloc(cache(), size)?, GFP_KERNEL)?;
            }
            let (after, pages_after) = stats(cache());
            let used = pages_after - pages;
            // At most: holes in pages shared with other users may take some.
            assert!(used <= N.div_ceil(PAGE_SIZE / rounded));
            assert_eq!(after.bytes_held - before.bytes_held, N * rounded);
            pr_info!(
                "{} objects of {} bytes: {} pages, {} bytes of executable memory per object\n",
                N,
                size,
                used,
                used * PAGE_SIZE / N
            );
            for a in slots {
                free(a)?;
            }
            assert_eq!(stats(cache()).1, pages);
        }
        Ok(())
    }

    /// One worker of `concurrent_alloc_write_free`: allocates, fills, checks and frees
    /// slots, keeping up to eight alive at a time.
    fn churn(worker: u32) -> Result {
        let mut live: [(usize, usize, u8); 8] = [(0, 0, 0); 8];
        let mut seed = 0x9e37_79b9u32 ^ worker;
        for i in 0..300usize {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let k = i % live.len();
            let (old, size, fill) = live[k];
            if old != 0 {
                for j in 0..size {
                    if byte(old + j) != fill {
                        return Err(EINVAL);
                    }
                }
                free(old)?;
            }
            let size = 1 + (seed >> 8) as usize % 400;
            let fill = (seed >> 24) as u8 | 1;
            let a = alloc(cache(), size)?;
            let mut buf = [0u8; 400];
            buf[..size].fill(fill);
            write(a, 0, buf.as_ptr().cast(), size)?;
            live[k] = (a, size, fill);
        }
        for &(a, _, _) in live.iter() {
            if a != 0 {
                free(a)?;
            }
        }
        Ok(())
    }

    #[test]
    fn concurrent_alloc_write_free() -> Result {
        use core::sync::atomic::AtomicUsize;
        use kernel::sync::Arc;
        use kernel::sync::Completion;

        const WORKERS: u32 = 4;
        let before = stats(cache());
        let failures = Arc::new(AtomicUsize::new(0), GFP_KERNEL)?;
        let mut done = KVec::new();
        for w in 0..WORKERS {
            let c = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
            let (c2, f) = (c.clone(), failures.clone());
            kernel::workqueue::system_long().try_spawn(GFP_KERNEL, move || {
                if churn(w).is_err() {
                    f.fetch_add(1, Ordering::Relaxed);
                }
                c2.complete_all();
            })?;
            done.push(c, GFP_KERNEL)?;
        }
        for c in done.iter() {
            c.wait_for_completion();
        }
        assert_eq!(failures.load(Ordering::Relaxed), 0);
        let after = stats(cache());
        assert_eq!(after.0.slots, before.0.slots);
        assert_eq!(after.0.bytes_held, before.0.bytes_held);
        assert_eq!(after.1, before.1);
        Ok(())
    }

    #[test]
    fn many_random_slots_do_not_overlap() -> Result {
        let before = stats(cache());
        let mut slots = KVec::new();
        let mut seed: u32 = 0x2545_f491;
        for _ in 0..400 {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
            let size = 1 + (seed >> 8) as usize % 512;
            slots.push((alloc(cache(), size)?, size), GFP_KERNEL)?;
        }
        slots.sort_unstable_by_key(|&(a, _)| a);
        for w in slots.windows(2) {
            assert!(w[0].0 + w[0].1 <= w[1].0);
        }
        let held: usize = slots
            .iter()
            .map(|&(_, s)| s.div_ceil(GRANULE) * GRANULE)
            .sum();
        assert_eq!(stats(cache()).0.bytes_held, before.0.bytes_held + held);
        for &(a, _) in slots.iter() {
            free(a)?;
        }
        let after = stats(cache());
        assert_eq!(after.0.slots, before.0.slots);
        assert_eq!(after.0.bytes_held, before.0.bytes_held);
        assert_eq!(after.1, before.1);
        Ok(())
    }
}
