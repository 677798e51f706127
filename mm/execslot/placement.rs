// SPDX-License-Identifier: GPL-2.0

//! Placement of slots inside one page of executable memory.
//!
//! Pure logic without kernel types, so that the very same file also builds as a host
//! crate for tests. A page is cut into [`GRANULE`]-byte granules. A slot is a run of granules;
//! every granule has an atomic entry that names the slot it belongs to, as its first granule
//! and its length, or says that the granule is free, so the slot around any address can be
//! found from that one granule (and the slot's first), without a list of slots. The entry
//! also holds a tag that the caller chose for the slot (the allocator: which cache owns
//! it), so that a lookup reads the slot and its tag in one load, and never pairs a slot
//! with the tag of another one that took its place. The entries take four bytes per
//! granule, 1 KiB per page.
//!
//! Placement is best fit: a request of `n` granules takes the smallest free run of at
//! least `n` granules, the lowest such run on a tie. A page therefore refuses a request
//! only when it has no free run of `n` granules, whatever its total free space.
//!
//! A page also keeps an upper bound on its longest free run: a search that walks the
//! whole page sets it to the longest run found, and a free resets it to the whole page. A
//! request longer than the bound is refused without a search, so that a caller who asks
//! every one of many pages that cannot hold it pays a load for each, not a walk.
//!
//! Concurrency: changes ([`PageMap::mark`], [`PageMap::alloc`], [`PageMap::free`]) and
//! searches ([`PageMap::find`], which updates the bound) must be serialised by the caller
//! (the allocator's mutex); lookups ([`PageMap::slot_at`],
//! [`PageMap::slot_at_offset`], [`PageMap::is_used`], [`PageMap::each_slot`]) may run at
//! the same time from any context, NMI included. A lookup is at most two atomic loads,
//! without a loop or a retry; [`PageMap::each_slot`] makes at most [`GRANULES`] lookups.
//!
//! - Every granule of a slot `(first, n)` with tag `t` holds the same value, which encodes
//!   `(first, n, t)`; a free granule holds `FREE`, which encodes no slot.
//! - [`PageMap::mark`] stores the value into granules `first + 1..first + n`, then into
//!   `first`: that last store publishes the slot. [`PageMap::free`] stores `FREE` into
//!   `first`, which unpublishes the slot, then into the other granules. All these stores
//!   are `Release`.
//! - A lookup of granule `g` loads its entry (`Acquire`). `FREE` gives `None`. A value
//!   `(first, n, t)` with `first == g` is the slot. Otherwise the lookup loads the entry of
//!   `first` (`Acquire`) and returns `(first, n, t)` only if that holds the very same value.
//!
//! What a lookup returns, then:
//!
//! 1. `None` or exactly a slot with its tag, never two slots merged nor a part of one,
//!    never the tag of another slot: the value `(first, n, t)` is only ever stored by a
//!    mark of that very slot with that tag.
//! 2. Only a published slot, and everything the writer did before [`PageMap::mark`] (the
//!    slot's contents) is visible to the caller: the lookup loaded the value from the
//!    slot's first granule, where mark stores it last, with `Release`, and the `Acquire`
//!    load synchronises with that store. The load cannot read from an older slot of the
//!    same place and size: if the lookup first loaded another granule, that `Acquire` load
//!    read from a `Release` store of the newer mark, which comes after the older slot's
//!    free, so the first granule held `FREE` or the newer slot by then. (A slot of the same
//!    place, size and tag is the same answer.)
//! 3. A slot appears and goes at once. A reader that found it finds it at every granule
//!    until it is freed: by 2 it sees all the values that mark stored. A reader that
//!    loaded `FREE` (or a newer value) from a granule of a slot being freed read from a
//!    `Release` store that comes after free's store into `first`, so from then on its
//!    lookups load `FREE` or a newer value from `first` and never find the slot again;
//!    one that loaded `FREE` from `first` itself never loads the older value again either.
//! 4. A slot that is live during the whole lookup is found, exactly, whatever happens next
//!    to it: its granules are only stored into by its own mark, before, and free, after.
//!
//! The argument uses the `Acquire` of both loads and the `Release` of every store but
//! free's store into `first`, which is `Release` as well for uniformity.
//! `tools/host/tests/loom.rs` model-checks 1 to 4 (with loom's atomics: `--cfg loom`).

// Not loom's: only the serialised writer uses it (see `PageMap::free_run_bound`).
#[cfg(not(loom))]
use core::sync::atomic::AtomicU32;
use core::sync::atomic::AtomicUsize;
#[cfg(not(loom))]
use core::sync::atomic::Ordering;
#[cfg(loom)]
use loom::sync::atomic::AtomicU32;
#[cfg(loom)]
use loom::sync::atomic::Ordering;

/// Size of the pages that slots are carved from.
pub const PAGE_SIZE: usize = 4096;

/// log2 of [`GRANULE`].
pub const GRANULE_SHIFT: u32 = 4;

/// Allocation unit and alignment of every slot, in bytes.
pub const GRANULE: usize = 1 << GRANULE_SHIFT;

/// Granules per page.
pub const GRANULES: usize = PAGE_SIZE / GRANULE;

/// Why a request or a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementError {
    /// A size of zero, or larger than a page.
    BadSize,
    /// A free that does not match a live slot exactly.
    NotASlot,
    /// A mark of granules that are not all free.
    NotFree,
}

/// Number of granules a slot of `size` bytes takes.
pub fn granules_for(size: usize) -> Result<usize, PlacementError> {
    if size == 0 || size > PAGE_SIZE {
        return Err(PlacementError::BadSize);
    }
    Ok(size.div_ceil(GRANULE))
}

/// The allocation state of one page.
pub struct PageMap {
    /// For each granule, the slot that it belongs to (see [`encode`]), or [`FREE`].
    slot: [AtomicU32; GRANULES],
    /// An upper bound on the length of the longest free run; see
    /// [`PageMap::free_run_bound`].
    ///
    /// Read and written only by [`PageMap::find`] and [`PageMap::free`], which the caller
    /// serialises with the other changes: that lock orders the accesses, so `Relaxed` is
    /// enough. An atomic only because the page is shared with the lock-free lookups (which
    /// never read it) and must be `Sync`. A caller that broke the serialisation could
    /// leave the bound too low, so that an allocation takes a new page while this one has
    /// room; nothing worse. `core`'s atomic even under `--cfg loom` (loom's `Ordering` is
    /// `core`'s): loom need not model what one thread at a time uses.
    free_run_bound: AtomicUsize,
}

/// Entry of a free granule; [`decode`] finds no slot in it.
const FREE: u32 = u32::MAX;

// A slot's first granule and length minus one fit in a byte each.
const _: () = assert!(GRANULES <= 256);

/// The entry of the granules of slot `(first, n)` with tag `tag`: `first` in bits 16-23,
/// `n - 1` in bits 8-15, the tag in bits 0-7. The caller ensures `n >= 1` and
/// `first + n <= GRANULES`, so the value is never [`FREE`].
fn encode(first: usize, n: usize, tag: u8) -> u32 {
    ((first << 16) | ((n - 1) << 8)) as u32 | u32::from(tag)
}

/// The slot `(first, n, tag)` that an entry names, if it names one inside the page.
#[inline(always)]
fn decode(e: u32) -> Option<(usize, usize, u8)> {
    if e == FREE {
        return None;
    }
    let first = ((e >> 16) & 0xff) as usize;
    let n = ((e >> 8) & 0xff) as usize + 1;
    if first + n <= GRANULES {
        Some((first, n, e as u8))
    } else {
        None
    }
}

impl Default for PageMap {
    fn default() -> Self {
        Self::new()
    }
}

impl PageMap {
    /// An empty page.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Self {
            slot: [const { AtomicU32::new(FREE) }; GRANULES],
            free_run_bound: AtomicUsize::new(GRANULES),
        }
    }

    /// An empty page. loom's atomics cannot be made in a constant context.
    #[cfg(loom)]
    pub fn new() -> Self {
        Self {
            slot: core::array::from_fn(|_| AtomicU32::new(FREE)),
            free_run_bound: AtomicUsize::new(GRANULES),
        }
    }

    /// Entry of granule `g`, for the writer, whose changes are serialised: it sees its own
    /// stores and those of the writers before it.
    fn entry(&self, g: usize) -> u32 {
        self.slot[g].load(Ordering::Relaxed)
    }

    /// Whether granule `g` belongs to a live slot; lock-free, like [`PageMap::slot_at`].
    #[inline(always)]
    pub fn is_used(&self, g: usize) -> bool {
        self.slot_at(g).is_some()
    }

    /// Number of granules in use.
    pub fn used_granules(&self) -> usize {
        (0..GRANULES).filter(|&g| self.entry(g) != FREE).count()
    }

    /// Number of live slots.
    pub fn slots(&self) -> usize {
        (0..GRANULES)
            .filter(|&g| decode(self.entry(g)).is_some_and(|(first, _, _)| first == g))
            .count()
    }

    /// The live slots in address order, as (first granule, granules, tag). Lock-free, like
    /// [`PageMap::slot_at`], and as exact: a slot live the whole time is seen, one that
    /// changes meanwhile may be missed or seen, and what is seen is a slot, with its tag.
    pub fn each_slot(&self) -> impl Iterator<Item = (usize, usize, u8)> + '_ {
        self.each_slot_from(0)
    }

    /// As [`PageMap::each_slot`], for the slots that start at granule `from` or later.
    pub fn each_slot_from(&self, from: usize) -> impl Iterator<Item = (usize, usize, u8)> + '_ {
        let mut g = from;
        core::iter::from_fn(move || {
            while g < GRANULES {
                match self.tagged_slot_at(g) {
                    Some((first, n, tag)) if first == g => {
                        g = first + n;
                        return Some((first, n, tag));
                    }
                    // A slot published after its first granule was passed: skip it
                    // (`first + n > g`), it cannot hide a slot that was live meanwhile.
                    Some((first, n, _)) => g = first + n,
                    None => g += 1,
                }
            }
            None
        })
    }

    /// Whether no slot is live.
    pub fn is_empty(&self) -> bool {
        (0..GRANULES).all(|g| self.entry(g) == FREE)
    }

    /// Length of the longest run of free granules.
    pub fn largest_free_run(&self) -> usize {
        let mut best = 0;
        let mut run = 0;
        for g in 0..GRANULES {
            if self.entry(g) != FREE {
                run = 0;
            } else {
                run += 1;
                best = core::cmp::max(best, run);
            }
        }
        best
    }

    /// An upper bound on the longest free run: no request of more granules can be met.
    /// A search that walks the whole page ([`PageMap::find`] without an exact fit) sets it
    /// to that run, [`PageMap::mark`] leaves it (a mark only shortens runs), and
    /// [`PageMap::free`] sets it to [`GRANULES`]. For the writer, like the changes.
    pub fn free_run_bound(&self) -> usize {
        self.free_run_bound.load(Ordering::Relaxed)
    }

    /// Finds a free run for `n` granules (best fit) without taking it: the first granule
    /// and the length of the run, so a caller can compare pages. A request longer than
    /// [`PageMap::free_run_bound`] is refused at once. Updates the bound when it walks the
    /// whole page, so, like the changes, it must be serialised.
    pub fn find(&self, n: usize) -> Option<(usize, usize)> {
        if n == 0 || n > self.free_run_bound() {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        let mut longest = 0;
        let mut g = 0;
        while g < GRANULES {
            if let Some((first, len, _)) = decode(self.entry(g)) {
                // Skip the rest of the slot.
                g = core::cmp::max(g + 1, first + len);
                continue;
            }
            let first = g;
            while g < GRANULES && self.entry(g) == FREE {
                g += 1;
            }
            let len = g - first;
            longest = core::cmp::max(longest, len);
            if len >= n && best.is_none_or(|(_, l)| len < l) {
                best = Some((first, len));
                if len == n {
                    // An exact fit ends the walk. The runs after it are not known, so the
                    // bound stays as it was: storing `longest` here could lower it below a
                    // longer run further on, and refuse a request that fits.
                    return best;
                }
            }
        }
        // The whole page was walked: `longest` is its longest free run.
        self.free_run_bound.store(longest, Ordering::Relaxed);
        best
    }

    /// Takes `n` granules for a slot tagged `tag` and returns the first one, or `None` when
    /// the page has no free run of `n` granules. Callers serialise changes.
    pub fn alloc(&self, n: usize, tag: u8) -> Option<usize> {
        let (first, _) = self.find(n)?;
        self.mark(first, n, tag).ok()?;
        Some(first)
    }

    /// Marks granules `first..first + n` as one slot tagged `tag` and publishes it.
    /// Separate from [`PageMap::find`] so that a caller can fill the slot between the two:
    /// a lookup that finds the slot sees what was written before the call. Refuses, and
    /// changes nothing, when the granules are not all inside the page and free.
    pub fn mark(&self, first: usize, n: usize, tag: u8) -> Result<(), PlacementError> {
        if n == 0 || first >= GRANULES || n > GRANULES - first {
            return Err(PlacementError::BadSize);
        }
        let run = &self.slot[first..first + n];
        // Changes are serialised: the last change of each entry is visible here.
        if run.iter().any(|s| s.load(Ordering::Relaxed) != FREE) {
            return Err(PlacementError::NotFree);
        }
        let e = encode(first, n, tag);
        for s in &run[1..] {
            s.store(e, Ordering::Release);
        }
        // Publishes the slot.
        run[0].store(e, Ordering::Release);
        Ok(())
    }

    /// Releases the slot that starts at granule `first` and spans `n` granules.
    pub fn free(&self, first: usize, n: usize) -> Result<(), PlacementError> {
        match self.slot_at(first) {
            Some((f, len)) if f == first && len == n => {
                // Unpublishes the slot.
                self.slot[first].store(FREE, Ordering::Release);
                for s in &self.slot[first + 1..first + n] {
                    s.store(FREE, Ordering::Release);
                }
                // The freed run may join others: the next search walks the page again.
                self.free_run_bound.store(GRANULES, Ordering::Relaxed);
                Ok(())
            }
            _ => Err(PlacementError::NotASlot),
        }
    }

    /// The slot that granule `g` belongs to, as (first granule, granules), if any.
    /// Lock-free; see the module's documentation for what it returns while slots change.
    #[inline(always)]
    pub fn slot_at(&self, g: usize) -> Option<(usize, usize)> {
        self.tagged_slot_at(g).map(|(first, n, _)| (first, n))
    }

    /// As [`PageMap::slot_at`], with the slot's tag, read with the slot.
    #[inline(always)]
    pub fn tagged_slot_at(&self, g: usize) -> Option<(usize, usize, u8)> {
        let e = self.slot.get(g)?.load(Ordering::Acquire);
        let (first, n, tag) = decode(e)?;
        if g == first {
            return Some((first, n, tag));
        }
        // A granule after the first: the slot is there if it is published, as this very
        // slot. (`first < g` always; the test keeps a wrong entry from giving a wrong slot.)
        if first < g && g < first + n && self.slot.get(first)?.load(Ordering::Acquire) == e {
            Some((first, n, tag))
        } else {
            None
        }
    }

    /// The tag of the slot that starts at granule `first`, if one does.
    #[inline(always)]
    pub fn tag(&self, first: usize) -> Option<u8> {
        match self.tagged_slot_at(first) {
            Some((f, _, tag)) if f == first => Some(tag),
            _ => None,
        }
    }

    /// The slot containing byte `offset` of the page, as (offset, size) in bytes.
    #[inline(always)]
    pub fn slot_at_offset(&self, offset: usize) -> Option<(usize, usize)> {
        if offset >= PAGE_SIZE {
            return None;
        }
        self.slot_at(offset >> GRANULE_SHIFT)
            .map(|(first, n)| (first * GRANULE, n * GRANULE))
    }
}
