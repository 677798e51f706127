// SPDX-License-Identifier: GPL-2.0

//! Placement of slots inside one page of executable memory.
//!
//! Pure logic without kernel types, so that the very same file also builds as a host
//! crate for tests. A page is cut into [`GRANULE`]-byte granules. A slot is a run of granules;
//! two bitmaps describe the page: `used` has a bit per granule that belongs to a slot and
//! `start` a bit per granule that begins one, so the slot around any address can be found
//! from the bitmaps alone, without a list of slots.
//!
//! Placement is best fit: a request of `n` granules takes the smallest free run of at
//! least `n` granules, the lowest such run on a tie. A page therefore refuses a request
//! only when it has no free run of `n` granules, whatever its total free space.
//!
//! Concurrency: the bitmaps are atomics. Changes ([`PageMap::alloc`], [`PageMap::free`])
//! must be serialised by the caller (the owning cache's mutex); lookups
//! ([`PageMap::slot_at`], [`PageMap::is_used`]) may run at the same time from any context,
//! NMI included: they only load atomics and never loop more than [`GRANULES`] times.
//! A slot's bits are set with release ordering after its contents were written, and
//! loaded with acquire ordering.

use core::sync::atomic::AtomicU64;
use core::sync::atomic::Ordering;

/// Size of the pages that slots are carved from.
pub const PAGE_SIZE: usize = 4096;

/// log2 of [`GRANULE`].
pub const GRANULE_SHIFT: u32 = 4;

/// Allocation unit and alignment of every slot, in bytes.
pub const GRANULE: usize = 1 << GRANULE_SHIFT;

/// Granules per page.
pub const GRANULES: usize = PAGE_SIZE / GRANULE;

const WORDS: usize = GRANULES / 64;

/// Why a request or a free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlacementError {
    /// A size of zero, or larger than a page.
    BadSize,
    /// A free that does not match a live slot exactly.
    NotASlot,
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
    used: [AtomicU64; WORDS],
    start: [AtomicU64; WORDS],
}

impl Default for PageMap {
    fn default() -> Self {
        Self::new()
    }
}

// Inlined into execslot's lock-free lookups, which kprobes must not probe.
#[inline(always)]
fn bit(bitmap: &[AtomicU64; WORDS], g: usize) -> bool {
    bitmap[g / 64].load(Ordering::Acquire) & (1u64 << (g % 64)) != 0
}

/// Sets (`on`) or clears the bits `first..first + n` of `bitmap`. Writers are serialised,
/// so a load and a store suffice; readers see each word change at once.
fn set_range(bitmap: &[AtomicU64; WORDS], first: usize, n: usize, on: bool) {
    let mut g = first;
    let end = first + n;
    while g < end {
        let w = g / 64;
        let lo = g % 64;
        let hi = core::cmp::min(64, lo + (end - g));
        let mask = if hi - lo == 64 {
            u64::MAX
        } else {
            ((1u64 << (hi - lo)) - 1) << lo
        };
        let old = bitmap[w].load(Ordering::Relaxed);
        let new = if on { old | mask } else { old & !mask };
        bitmap[w].store(new, Ordering::Release);
        g += hi - lo;
    }
}

impl PageMap {
    /// An empty page.
    pub const fn new() -> Self {
        Self {
            used: [const { AtomicU64::new(0) }; WORDS],
            start: [const { AtomicU64::new(0) }; WORDS],
        }
    }

    /// Whether granule `g` belongs to a slot.
    #[inline(always)]
    pub fn is_used(&self, g: usize) -> bool {
        g < GRANULES && bit(&self.used, g)
    }

    /// Number of granules in use.
    pub fn used_granules(&self) -> usize {
        self.used
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// Number of live slots.
    pub fn slots(&self) -> usize {
        self.start
            .iter()
            .map(|w| w.load(Ordering::Relaxed).count_ones() as usize)
            .sum()
    }

    /// The live slots in address order, as (first granule, granules). Lock-free, like
    /// [`PageMap::slot_at`]: a slot that changes meanwhile may be missed or seen.
    pub fn each_slot(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        let mut g = 0;
        core::iter::from_fn(move || {
            while g < GRANULES {
                match self.slot_at(g) {
                    Some((first, n)) if first == g => {
                        g = first + n;
                        return Some((first, n));
                    }
                    _ => g += 1,
                }
            }
            None
        })
    }

    /// Whether no slot is live.
    pub fn is_empty(&self) -> bool {
        self.used.iter().all(|w| w.load(Ordering::Relaxed) == 0)
    }

    /// Length of the longest run of free granules.
    pub fn largest_free_run(&self) -> usize {
        let mut best = 0;
        let mut run = 0;
        for g in 0..GRANULES {
            if bit(&self.used, g) {
                run = 0;
            } else {
                run += 1;
                best = core::cmp::max(best, run);
            }
        }
        best
    }

    /// Finds room for `n` granules (best fit) without taking it: the first granule and
    /// the length of the free run it starts, so a caller can compare pages.
    pub fn find(&self, n: usize) -> Option<(usize, usize)> {
        if n == 0 || n > GRANULES {
            return None;
        }
        let mut best: Option<(usize, usize)> = None;
        let mut g = 0;
        while g < GRANULES {
            if bit(&self.used, g) {
                g += 1;
                continue;
            }
            let first = g;
            while g < GRANULES && !bit(&self.used, g) {
                g += 1;
            }
            let len = g - first;
            if len >= n && best.is_none_or(|(_, l)| len < l) {
                best = Some((first, len));
                if len == n {
                    break;
                }
            }
        }
        best
    }

    /// Takes `n` granules and returns the first one, or `None` when the page has no free
    /// run of `n` granules. Callers serialise changes.
    pub fn alloc(&self, n: usize) -> Option<usize> {
        let (first, _) = self.find(n)?;
        self.mark(first, n);
        Some(first)
    }

    /// Marks granules `first..first + n` as one slot; they must be free. Separate from
    /// [`PageMap::find`] so that a caller can fill the slot between the two and publish it
    /// only once its contents are in place.
    pub fn mark(&self, first: usize, n: usize) {
        set_range(&self.used, first, n, true);
        set_range(&self.start, first, 1, true);
    }

    /// Releases the slot that starts at granule `first` and spans `n` granules.
    pub fn free(&self, first: usize, n: usize) -> Result<(), PlacementError> {
        match self.slot_at(first) {
            Some((f, len)) if f == first && len == n => {
                set_range(&self.start, first, 1, false);
                set_range(&self.used, first, n, false);
                Ok(())
            }
            _ => Err(PlacementError::NotASlot),
        }
    }

    /// The slot that granule `g` belongs to, as (first granule, granules), if any.
    #[inline(always)]
    pub fn slot_at(&self, g: usize) -> Option<(usize, usize)> {
        if !self.is_used(g) {
            return None;
        }
        let mut first = g;
        while !bit(&self.start, first) {
            if first == 0 || !bit(&self.used, first - 1) {
                // Racing with a change: no consistent slot here.
                return None;
            }
            first -= 1;
        }
        let mut end = first + 1;
        while end < GRANULES && bit(&self.used, end) && !bit(&self.start, end) {
            end += 1;
        }
        Some((first, end - first))
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
