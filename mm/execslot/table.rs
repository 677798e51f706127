// SPDX-License-Identifier: GPL-2.0

//! The pages of slots, and the table of them that the lock-free lookups read.
//!
//! The table is an array of pages sorted by address. Writers never change it in place:
//! they publish a new one and free the old one, and a page that left it, after an RCU
//! grace period. Readers borrow its pages through [`Pages`], which only the [`Writer`] or
//! a promise of an RCU read-side critical section (at the C boundary of the lookups)
//! gives, for no longer than that is held.

use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr;
use core::sync::atomic::AtomicPtr;
use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KBox;
use kernel::alloc::KVec;
use kernel::error::code::EBUSY;
use kernel::error::code::EINVAL;
use kernel::error::code::ENOMEM;
use kernel::error::Result;
use kernel::execmem::ExecMem;
use kernel::execmem::Type;
use kernel::prelude::*;
use kernel::sync::rcu;
use kernel::text_patching::TextMutexHeld;
use kernel::workqueue;
use kernel::workqueue::impl_has_work;
use kernel::workqueue::new_work;
use kernel::workqueue::Work;
use kernel::workqueue::WorkItem;

use crate::placement::PageMap;
use crate::placement::GRANULES;
use crate::placement::GRANULE_SHIFT;
use crate::placement::PAGE_SIZE;

// The placement carves slots from pages of its own size: the kernel's.
static_assert!(PAGE_SIZE == kernel::page::PAGE_SIZE);

/// Fill of unused executable memory: INT3.
pub const INT3: u8 = 0xcc;

/// Owner id of a granule that starts no slot.
pub const NO_OWNER: u8 = u8::MAX;

/// Words of a bitmap with a bit per granule.
pub const BITMAP_WORDS: usize = GRANULES / 64;

/// One page of slots.
pub struct SlotPage {
    /// The page; it also serves the execmem types that `execmem_same_range()` finds alike.
    pub mem: ExecMem,
    /// Which granules of the page hold which slot, and each slot's owner id (an index into
    /// the caches) as its tag, read by the lookups with the slot.
    pub map: PageMap,
    /// Slots given to `execslot_free_deferred()`, a bit at their first granule; changed
    /// under the [`Writer`].
    pub pending: [AtomicU64; BITMAP_WORDS],
    /// Pending slots whose RCU grace period has begun: the reaper frees them next.
    pub ripe: [AtomicU64; BITMAP_WORDS],
}

impl SlotPage {
    /// Start of the page; page aligned.
    #[inline(always)]
    pub fn addr(&self) -> usize {
        self.mem.addr()
    }

    /// Address of granule `g` of the page: no carry, since the page is page aligned.
    #[inline(always)]
    pub fn granule_addr(&self, g: usize) -> usize {
        self.addr() | ((g % GRANULES) << GRANULE_SHIFT)
    }

    /// Owner id of the slot that starts at granule `g`; [`NO_OWNER`] for any other `g`.
    #[inline(always)]
    pub fn owner(&self, g: usize) -> usize {
        self.map.tag(g).unwrap_or(NO_OWNER).into()
    }

    /// Whether the slot starting at granule `g` waits for the reaper.
    pub fn is_pending(&self, g: usize) -> bool {
        let bit = 1u64 << (g % 64);
        let word =
            |b: &[AtomicU64; BITMAP_WORDS]| b.get(g / 64).map_or(0, |w| w.load(Ordering::Relaxed));
        (word(&self.pending) | word(&self.ripe)) & bit != 0
    }
}

/// The pages sorted by address, as the lock-free lookups see them.
struct Table {
    pages: KVec<*const SlotPage>,
}

/// Current [`Table`], replaced by the [`Writer`]; the old one is freed by a [`Retired`]
/// work item after an RCU grace period. Null until the first page is added.
static TABLE: AtomicPtr<Table> = AtomicPtr::new(ptr::null_mut());

/// Changes whenever a slot comes or goes or the table is replaced: what a walker of the
/// slots remembered under another value is stale.
static GEN: AtomicU64 = AtomicU64::new(0);

/// The current generation of the slots; see [`Writer::changed()`].
#[inline(always)]
pub fn generation() -> u64 {
    GEN.load(Ordering::Acquire)
}

/// The pages of one table, borrowed for `'g`.
///
/// # Invariants
///
/// `pages` is the array of a `Table` that was loaded from `TABLE`, and every page in it
/// stays allocated for `'g`: the borrow is made under an RCU read-side critical section or
/// under the [`Writer`], both held for `'g`.
#[derive(Clone, Copy)]
pub struct Pages<'g> {
    table: *const Table,
    pages: &'g [*const SlotPage],
}

impl<'g> Pages<'g> {
    /// The table as it is now, for a caller in an RCU read-side critical section that C
    /// opened (the lock-free lookups): takes no guard, so that the lookups call nothing.
    ///
    /// # Safety
    ///
    /// The caller is in an RCU read-side critical section for `'g`.
    #[inline(always)]
    pub unsafe fn rcu_held() -> Self {
        // SAFETY: the caller's guarantee.
        unsafe { Self::at(TABLE.load(Ordering::Acquire)) }
    }

    /// # Safety
    ///
    /// `t` was loaded from [`TABLE`], and the caller is in an RCU read-side critical section
    /// or holds the [`Writer`] for `'g`.
    #[inline(always)]
    unsafe fn at(t: *const Table) -> Self {
        let pages: &'g [*const SlotPage] = if t.is_null() {
            &[]
        } else {
            // SAFETY: a non-null `TABLE` points to a live `Table`: it is freed only after it
            // was replaced and an RCU grace period elapsed, and the caller is inside a
            // read-side critical section (or holds the writer, who replaces tables).
            unsafe { &(*t).pages }
        };
        // INVARIANT: pages leave the table under the writer and are freed a grace period
        // after that, like the table.
        Self { table: t, pages }
    }

    /// Identity of the table, to tell whether two borrows saw the same one.
    #[inline(always)]
    pub fn identity(&self) -> usize {
        self.table as usize
    }

    /// Number of pages.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.pages.len()
    }

    /// Whether the table holds no page.
    #[inline(always)]
    pub fn is_empty(&self) -> bool {
        self.pages.is_empty()
    }

    /// Page `i`, by address order.
    #[inline(always)]
    pub fn get(&self, i: usize) -> Option<&'g SlotPage> {
        let &p = self.pages.get(i)?;
        // SAFETY: pages in the table stay allocated for `'g` (type invariant).
        Some(unsafe { &*p })
    }

    /// The pages by address.
    pub fn iter(self) -> impl Iterator<Item = &'g SlotPage> {
        // SAFETY: pages in the table stay allocated for `'g` (type invariant).
        self.pages.iter().map(|&p| unsafe { &*p })
    }

    /// The page containing `addr` and the offset of `addr` in it, if any.
    ///
    /// Inlined, like everything the lookups call, so that the kprobes blacklist entries of
    /// the lookup functions cover all of their code. Cannot panic: no index or arithmetic
    /// here can fail.
    #[inline(always)]
    pub fn page_of(&self, addr: usize) -> Option<(&'g SlotPage, usize)> {
        // Binary search by hand: calls into core::slice are not blacklisted for kprobes.
        // `lo <= mid < hi <= len <= isize::MAX`: the wrapping forms never wrap, and keep
        // overflow checks (panics) out of a function that runs in NMI context.
        let (mut lo, mut hi) = (0usize, self.pages.len());
        while lo < hi {
            let mid = lo.wrapping_add((hi - lo) / 2);
            let p = self.get(mid)?;
            if addr < p.addr() {
                hi = mid;
                continue;
            }
            let off = addr - p.addr();
            if off >= PAGE_SIZE {
                lo = mid.wrapping_add(1);
            } else {
                return Some((p, off));
            }
        }
        None
    }
}

/// The right to change the table and the slots: only one exists, inside the allocator's
/// mutex, so holding `&Writer` proves that the mutex is held, and `&mut Writer` that no
/// page borrowed from it is still in use.
pub struct Writer {
    _private: PhantomData<()>,
}

impl Writer {
    /// # Safety
    ///
    /// Called once, for the allocator's mutex.
    pub const unsafe fn new() -> Self {
        Self {
            _private: PhantomData,
        }
    }

    /// The table, for as long as the writer is borrowed.
    pub fn pages(&self) -> Pages<'_> {
        // SAFETY: `TABLE` is only replaced through `&mut Writer`, which the borrow of
        // `self` excludes; pages leave it the same way.
        unsafe { Pages::at(TABLE.load(Ordering::Acquire)) }
    }

    /// Records that slots came or went; see [`generation()`].
    pub fn changed(&self) {
        GEN.fetch_add(1, Ordering::Release);
    }

    /// Allocates a page of `ty`, fills it with INT3, adds it to the table and returns its
    /// address.
    pub fn add_page(&mut self, held: &TextMutexHeld<'_>, ty: Type) -> Result<usize> {
        let mem = ExecMem::alloc_rox(ty, 1)?;
        // SAFETY: nothing knows of the page yet, so nothing executes it.
        unsafe { held.set(&mem, 0, INT3, PAGE_SIZE)? };
        let page = KBox::new(
            SlotPage {
                mem,
                map: PageMap::new(),
                pending: [const { AtomicU64::new(0) }; BITMAP_WORDS],
                ripe: [const { AtomicU64::new(0) }; BITMAP_WORDS],
            },
            GFP_KERNEL,
        )?;
        let addr = page.addr();
        let mut pages = self.copy_table()?;
        let at = self.pages().iter().position(|p| p.addr() > addr);
        let raw = KBox::into_raw(page);
        let at = at.unwrap_or(pages.len());
        if pages.insert_within_capacity(at, raw).is_err() || self.publish(pages, None).is_err() {
            // SAFETY: `raw` came from `KBox::into_raw()` above and was never published.
            drop(unsafe { KBox::from_raw(raw) });
            return Err(ENOMEM);
        }
        Ok(addr)
    }

    /// Takes `page`, a page of the table that holds no slot, out of the table; it goes back
    /// to execmem after a grace period. A page that still holds a slot is refused with
    /// `EBUSY`: something may execute it. On an error nothing changed.
    pub fn remove_page(&mut self, page: *const SlotPage) -> Result {
        // By index, not enumerate(): its count is an addition that could panic, and the
        // paths that free a slot must not.
        let pages = self.pages();
        let (i, p) = (0..pages.len())
            .find_map(|i| pages.get(i).filter(|&p| ptr::eq(p, page)).map(|p| (i, p)))
            .ok_or(EINVAL)?;
        if !p.map.is_empty() {
            return Err(EBUSY);
        }
        let mut pages = self.copy_table()?;
        pages.remove(i).map_err(|_| EINVAL)?;
        self.publish(pages, Some(page))
    }

    /// The current table's pages, copied, with room for one more.
    fn copy_table(&self) -> Result<KVec<*const SlotPage>> {
        let cur = self.pages().pages;
        let mut v = KVec::with_capacity(cur.len().checked_add(1).ok_or(ENOMEM)?, GFP_KERNEL)?;
        v.extend_from_slice(cur, GFP_KERNEL)?;
        Ok(v)
    }

    /// Replaces the table by `pages`. The old table and `gone`, a page of the table that is
    /// not in `pages`, are freed after a grace period; on an error nothing changed.
    fn publish(&mut self, pages: KVec<*const SlotPage>, gone: Option<*const SlotPage>) -> Result {
        let new = KBox::new(Table { pages }, GFP_KERNEL)?;
        // The memory of the work item that will free what this change retires, taken
        // before anything changes: no writer ever waits for a grace period.
        let item = KBox::<Retired>::new_uninit(GFP_KERNEL)?;
        let old = TABLE.swap(KBox::into_raw(new), Ordering::AcqRel);
        self.changed();
        let gone = gone.unwrap_or(ptr::null());
        if old.is_null() && gone.is_null() {
            return Ok(());
        }
        let item = item.write_pin_init(pin_init!(Retired {
            table: old,
            page: gone,
            work <- new_work!("execslot::Retired::work"),
        }));
        match item {
            Ok(item) => workqueue::system_dfl().enqueue(item),
            Err(e) => match e {},
        }
        Ok(())
    }
}

/// A replaced table, and the page that left it with that change if any, waiting for
/// an RCU grace period; the work item waits for one and frees them, so that writers,
/// who hold `text_mutex`, never wait for a grace period.
#[pin_data]
struct Retired {
    /// The table that was replaced; null if there was none.
    table: *mut Table,
    /// The page that left with the change; null when the change added a page.
    page: *const SlotPage,
    /// Runs [`WorkItem::run()`] on `system_dfl_wq`.
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
        // They left `TABLE` before the item was queued: a grace period that starts now
        // ends after every reader that could still see them.
        rcu::synchronize_rcu();
        // SAFETY: the table and page left `TABLE` a grace period ago, and the item is the
        // only owner of both.
        unsafe { free_retired(this.table, this.page) };
    }
}

/// Frees `table` and, unless null, `page`, whose memory goes back to execmem.
///
/// # Safety
///
/// Neither is in [`TABLE`] any more, an RCU grace period has elapsed since they left it,
/// and the caller owns them: both came from `KBox::into_raw()` in this file.
unsafe fn free_retired(table: *mut Table, page: *const SlotPage) {
    if !table.is_null() {
        // SAFETY: the caller's guarantee.
        drop(unsafe { KBox::from_raw(table) });
    }
    if !page.is_null() {
        // SAFETY: the caller's guarantee; dropping the page drops its `ExecMem`.
        drop(unsafe { KBox::from_raw(page.cast_mut()) });
    }
}
