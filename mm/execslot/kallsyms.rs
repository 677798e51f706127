// SPDX-License-Identifier: GPL-2.0

//! The slots of a cache, one by one, for `/proc/kallsyms`.
//!
//! The walk of `/proc/kallsyms` asks for symbols 0, 1, 2, ... in turn. Each call continues
//! from where the last one stopped (a [`Hint`]) instead of counting the cache's slots again
//! from the first page, so reading the whole file is linear in the number of slots while no
//! slot comes or goes.

use core::ptr;
use core::sync::atomic::Ordering;

use kernel::bindings;
use kernel::prelude::*;
use kernel::sync::global_lock;

use crate::placement::GRANULE_SHIFT;
use crate::slots::CACHES;
use crate::table::generation;
use crate::table::Pages;

/// Where a kallsyms walk of one cache stopped, valid while the generation of the slots
/// is `gen` and the table is the one at `table`.
#[derive(Clone, Copy)]
pub(crate) struct Hint {
    gen: u64,
    /// Identity of the table that `page` indexes.
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
    pub(crate) unsafe(uninit) static KALLSYM_HINTS: SpinLock<[Hint; HINTS]> = [Hint {
        gen: u64::MAX,
        table: 0,
        id: usize::MAX,
        symnum: 0,
        page: 0,
        granule: 0,
        total: None,
    }; HINTS];
}

/// The `want`-th slot of `cache` in address order, as (address, size); or, if the cache
/// has fewer slots, `Err` with `want` less the number of its slots.
pub(crate) fn get_kallsym(
    pages: Pages<'_>,
    cache: *const bindings::execslot_cache,
    want: u32,
) -> Result<(usize, usize), u32> {
    let Some(id) = CACHES
        .iter()
        .position(|c| ptr::eq(c.load(Ordering::Acquire), cache))
    else {
        return Err(want);
    };
    let gen = generation();
    let table = pages.identity();
    // Continue from this cache's hint if nothing changed since, in this very table; a
    // contended lock only means a walk from the start.
    let hint = KALLSYM_HINTS
        .try_lock()
        .and_then(|h| h.get(id % HINTS).copied())
        .filter(|h| h.gen == gen && h.table == table && h.id == id && h.symnum <= want);
    if let Some(total) = hint.and_then(|h| h.total) {
        if let Some(left) = want.checked_sub(total) {
            return Err(left);
        }
    }
    let (from_page, from_granule, mut left) = hint.map_or((0, 0, want), |h| {
        (h.page, h.granule, want.saturating_sub(h.symnum))
    });
    let mut found = None;
    let mut i = from_page;
    'walk: while let Some(p) = pages.get(i) {
        let (this, from) = (i, if i == from_page { from_granule } else { 0 });
        // Cannot wrap: `i < pages.len()`.
        i = i.wrapping_add(1);
        // The owner is the slot's tag, read with the slot.
        for (first, n, owner) in p.map.each_slot_from(from) {
            if usize::from(owner) != id {
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
            table,
            id,
            symnum: want,
            page,
            granule,
            total: hint.and_then(|h| h.total),
        },
        None => Hint {
            gen,
            table,
            id,
            symnum: hint.map_or(0, |h| h.symnum),
            page: hint.map_or(0, |h| h.page),
            granule: hint.map_or(0, |h| h.granule),
            total: Some(want.saturating_sub(left)),
        },
    };
    // A walk that overlapped a change may have seen some of it: remember none of it.
    if generation() == gen {
        if let Some(mut h) = KALLSYM_HINTS.try_lock() {
            if let Some(slot) = h.get_mut(id % HINTS) {
                *slot = new;
            }
        }
    }
    match found {
        Some((_, _, addr, len)) => Ok((addr, len)),
        None => Err(left),
    }
}
