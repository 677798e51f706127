// SPDX-License-Identifier: GPL-2.0

//! Sub-page slots of executable memory.
//!
//! ftrace trampolines (200 to 400 bytes) and kprobes instruction slots (16 to 128 bytes)
//! each take a whole page of executable memory today, or a cache of their own. This object
//! hands out slots of any size up to a page, in [`placement::GRANULE`]-byte granules, from
//! shared read-only executable pages. This first part is the placement logic; the pages,
//! the writes through text_poke and the lookup follow.

pub mod placement;

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
}
