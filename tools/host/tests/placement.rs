//! Tests of mm/execslot/placement.rs: unit tests and property tests against a
//! reference model (one bool per granule, a list of live slots). The concurrent lookups
//! are model-checked in tests/loom.rs, with `--cfg loom`, which these tests do not build
//! with (loom's atomics only work inside a loom model).
#![cfg(not(loom))]

use execslot_host::placement::*;
use proptest::prelude::*;

#[test]
fn granule_rounding() {
    assert_eq!(granules_for(0), Err(PlacementError::BadSize));
    assert_eq!(granules_for(1), Ok(1));
    assert_eq!(granules_for(15), Ok(1));
    assert_eq!(granules_for(16), Ok(1));
    assert_eq!(granules_for(17), Ok(2));
    assert_eq!(granules_for(300), Ok(19));
    assert_eq!(granules_for(PAGE_SIZE), Ok(GRANULES));
    assert_eq!(granules_for(PAGE_SIZE + 1), Err(PlacementError::BadSize));
}

#[test]
fn whole_page_then_full() {
    let m = PageMap::new();
    assert!(m.is_empty());
    assert_eq!(m.alloc(GRANULES, 0), Some(0));
    assert_eq!(m.alloc(1, 0), None);
    assert_eq!(m.used_granules(), GRANULES);
    assert_eq!(m.slot_at_offset(PAGE_SIZE - 1), Some((0, PAGE_SIZE)));
    assert_eq!(m.slot_at_offset(PAGE_SIZE), None);
    m.free(0, GRANULES).unwrap();
    assert!(m.is_empty());
    assert_eq!(m.largest_free_run(), GRANULES);
}

#[test]
fn fifteen_byte_slots_fill_a_page() {
    let m = PageMap::new();
    let n = granules_for(15).unwrap();
    let mut got = Vec::new();
    while let Some(g) = m.alloc(n, 0) {
        got.push(g);
    }
    assert_eq!(got.len(), GRANULES);
    assert_eq!(got, (0..GRANULES).collect::<Vec<_>>());
    assert_eq!(m.slots(), GRANULES);
}

#[test]
fn best_fit_prefers_the_tightest_hole() {
    let m = PageMap::new();
    let a = m.alloc(10, 0).unwrap(); // 0..10
    let b = m.alloc(3, 0).unwrap(); // 10..13
    let c = m.alloc(5, 0).unwrap(); // 13..18
    let _d = m.alloc(1, 0).unwrap(); // 18..19
    m.free(a, 10).unwrap(); // hole of 10 at 0
    m.free(c, 5).unwrap(); // hole of 5 at 13
    assert_eq!(b, 10);
    // A request of 4 goes into the 5-hole, not the first (10) hole.
    assert_eq!(m.alloc(4, 0), Some(13));
    // A request of 6 only fits in the 10-hole; find() reports the hole's length.
    assert_eq!(m.find(6), Some((0, 10)));
    assert_eq!(m.alloc(6, 0), Some(0));
}

/// A page that refused a request keeps the length of its longest free run as its bound,
/// so that it refuses longer requests without a walk; an exact fit, which ends the walk
/// early, leaves the bound alone; a free resets the bound to the whole page.
#[test]
fn free_run_bound_after_refusal_exact_fit_and_free() {
    let m = PageMap::new();
    assert_eq!(m.free_run_bound(), GRANULES);
    // Nineteen 13-granule trampolines leave a hole of 9 at the end.
    let firsts: Vec<_> = (0..19).map(|_| m.alloc(13, 0).unwrap()).collect();
    assert_eq!(firsts[18], 18 * 13);
    // Each walk left the longest run before its mark: an upper bound.
    assert_eq!(m.free_run_bound(), 22);
    assert_eq!(m.find(13), None);
    assert_eq!(m.free_run_bound(), 9);
    assert_eq!(m.find(10), None);
    // An exact fit: found, and the bound stays an upper bound.
    assert_eq!(m.find(9), Some((247, 9)));
    assert_eq!(m.free_run_bound(), 9);
    assert_eq!(m.alloc(9, 0), Some(247));
    assert_eq!(m.free_run_bound(), 9, "a mark leaves the bound");
    assert_eq!(m.find(1), None);
    assert_eq!(m.free_run_bound(), 0);
    m.free(firsts[5], 13).unwrap();
    assert_eq!(m.free_run_bound(), GRANULES);
    assert_eq!(m.find(13), Some((firsts[5], 13)));
    // A request no longer than the bound may still walk, and find nothing.
    assert_eq!(m.find(14), None);
    assert_eq!(m.free_run_bound(), 13);
}

/// A free that joins two free runs into one longer than the bound: the free resets the
/// bound to the whole page, so the next search walks and finds the joined run.
#[test]
fn free_joining_two_runs_beyond_the_bound() {
    let m = PageMap::new();
    let a = m.alloc(4, 0).unwrap();
    let b = m.alloc(4, 0).unwrap();
    let c = m.alloc(4, 0).unwrap();
    assert_eq!(m.alloc(GRANULES - 12, 0), Some(12));
    m.free(a, 4).unwrap();
    m.free(c, 4).unwrap();
    // Two runs of 4 around `b`: a search for 8 walks the page and lowers the bound to 4.
    assert_eq!(m.find(8), None);
    assert_eq!(m.free_run_bound(), 4);
    m.free(b, 4).unwrap();
    assert_eq!(m.find(12), Some((0, 12)));
}

#[test]
fn lookup_edges() {
    let m = PageMap::new();
    let a = m.alloc(19, 0).unwrap();
    let b = m.alloc(19, 0).unwrap();
    assert_eq!((a, b), (0, 19));
    let (off, size) = (b * GRANULE, 19 * GRANULE);
    assert_eq!(m.slot_at_offset(off), Some((off, size)));
    assert_eq!(m.slot_at_offset(off + size - 1), Some((off, size)));
    assert_eq!(m.slot_at_offset(off - 1), Some((0, size)));
    assert_eq!(m.slot_at_offset(off + size), None);
    m.free(b, 19).unwrap();
    assert_eq!(m.slot_at_offset(off), None);
    assert_eq!(m.slot_at_offset(off - 1), Some((0, size)));
}

#[test]
fn bad_frees_are_refused_and_change_nothing() {
    let m = PageMap::new();
    let a = m.alloc(8, 0).unwrap();
    let _b = m.alloc(8, 0).unwrap();
    assert_eq!(m.free(a + 1, 7), Err(PlacementError::NotASlot));
    assert_eq!(m.free(a, 7), Err(PlacementError::NotASlot));
    assert_eq!(m.free(a, 16), Err(PlacementError::NotASlot));
    assert_eq!(m.free(100, 1), Err(PlacementError::NotASlot));
    assert_eq!(m.free(GRANULES + 3, 1), Err(PlacementError::NotASlot));
    assert_eq!(m.used_granules(), 16);
    m.free(a, 8).unwrap();
    assert_eq!(m.free(a, 8), Err(PlacementError::NotASlot), "double free");
}

#[test]
fn extreme_slots_and_out_of_page_marks() {
    let m = PageMap::new();
    // The last granule alone, then the rest of the page: the entries at both ends of the
    // encoding.
    assert_eq!(m.mark(GRANULES - 1, 1, u8::MAX), Ok(()));
    assert_eq!(m.slot_at(GRANULES - 1), Some((GRANULES - 1, 1)));
    assert_eq!(
        m.tagged_slot_at(GRANULES - 1),
        Some((GRANULES - 1, 1, u8::MAX))
    );
    assert_eq!(m.alloc(GRANULES - 1, 0), Some(0));
    assert_eq!(m.slot_at(GRANULES - 2), Some((0, GRANULES - 1)));
    assert_eq!(
        m.each_slot().collect::<Vec<_>>(),
        [(0, GRANULES - 1, 0), (GRANULES - 1, 1, u8::MAX)]
    );
    assert_eq!(m.free(GRANULES - 1, 1), Ok(()));
    assert_eq!(m.free(0, GRANULES - 1), Ok(()));
    // Marks that do not fit in the page are refused and change nothing.
    for (f, n) in [
        (0, 0),
        (GRANULES, 1),
        (GRANULES - 1, 2),
        (1, usize::MAX),
        (usize::MAX, 2),
    ] {
        assert_eq!(m.mark(f, n, 0), Err(PlacementError::BadSize));
    }
    assert!(m.is_empty());
    // So are marks over granules that are not free: a slot, or a part of one.
    assert_eq!(m.mark(4, 4, 0), Ok(()));
    for (f, n) in [(4, 4), (0, 5), (7, 1), (5, 2), (7, 3)] {
        assert_eq!(m.mark(f, n, 0), Err(PlacementError::NotFree));
    }
    assert_eq!(m.each_slot().collect::<Vec<_>>(), [(4, 4, 0)]);
    assert_eq!(m.free(4, 4), Ok(()));
    assert!(m.is_empty());
    assert_eq!(m.slot_at(usize::MAX), None);
    assert!(!m.is_used(GRANULES));
}

#[test]
fn zero_and_oversized_requests() {
    let m = PageMap::new();
    assert_eq!(m.alloc(0, 0), None);
    assert_eq!(m.alloc(GRANULES + 1, 0), None);
    assert!(m.is_empty());
}

/// The reference: a bool per granule and the live slots.
#[derive(Default)]
struct Model {
    used: Vec<bool>,
    slots: Vec<(usize, usize, u8)>,
}

impl Model {
    fn new() -> Self {
        Self {
            used: vec![false; GRANULES],
            slots: Vec::new(),
        }
    }
    fn runs(&self) -> Vec<(usize, usize)> {
        let mut out = Vec::new();
        let mut g = 0;
        while g < GRANULES {
            if self.used[g] {
                g += 1;
                continue;
            }
            let f = g;
            while g < GRANULES && !self.used[g] {
                g += 1;
            }
            out.push((f, g - f));
        }
        out
    }
    fn best_fit(&self, n: usize) -> Option<usize> {
        self.best_run(n).map(|(f, _)| f)
    }
    fn best_run(&self, n: usize) -> Option<(usize, usize)> {
        self.runs()
            .into_iter()
            .filter(|&(_, l)| l >= n)
            .min_by_key(|&(f, l)| (l, f))
    }
}

#[derive(Debug, Clone)]
enum Op {
    Alloc(usize),
    Free(usize),
    /// A search that no mark follows (the allocator asks pages it does not pick).
    Find(usize),
    /// A mark of n granules at the end of the i-th free run that holds them, not where
    /// best fit would put them.
    MarkAt(usize, usize),
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let size = prop_oneof![
        3 => 1usize..=2,          // kprobe insn slots
        2 => 8usize..=9,          // optprobe slots
        3 => 13usize..=24,        // ftrace trampolines
        1 => 1usize..=GRANULES,   // anything
    ];
    prop::collection::vec(
        prop_oneof![
            4 => size.clone().prop_map(Op::Alloc),
            2 => any::<usize>().prop_map(Op::Free),
            1 => size.clone().prop_map(Op::Find),
            1 => (any::<usize>(), size).prop_map(|(i, n)| Op::MarkAt(i, n)),
        ],
        1..400,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Against the model: the same placement, no overlap, exact accounting, every freed
    /// granule reusable, lookups agree, an emptied page is seen as empty.
    #[test]
    fn matches_reference_model(ops in ops()) {
        let m = PageMap::new();
        let mut r = Model::new();
        let mut tags = 0u8;
        for op in ops {
            match op {
                Op::Alloc(n) => {
                    let want = r.best_fit(n);
                    // A tag of its own for each slot, so that a lookup that paired a slot
                    // with another one's tag is caught.
                    let tag = tags;
                    tags = tags.wrapping_add(1);
                    let got = m.alloc(n, tag);
                    prop_assert_eq!(got, want, "alloc({})", n);
                    if let Some(f) = got {
                        prop_assert!(f + n <= GRANULES);
                        for g in f..f + n {
                            prop_assert!(!r.used[g], "overlap at granule {}", g);
                            r.used[g] = true;
                        }
                        r.slots.push((f, n, tag));
                    } else {
                        // Refused only when no free run is long enough, and the bound
                        // then refuses the same request without a walk.
                        prop_assert!(m.largest_free_run() < n);
                        prop_assert!(m.free_run_bound() < n);
                    }
                }
                Op::Find(n) => {
                    prop_assert_eq!(m.find(n), r.best_run(n), "find({})", n);
                }
                Op::MarkAt(i, n) => {
                    let runs: Vec<_> = r.runs().into_iter().filter(|&(_, l)| l >= n).collect();
                    if runs.is_empty() {
                        continue;
                    }
                    let (f, l) = runs[i % runs.len()];
                    let first = f + l - n;
                    let tag = tags;
                    tags = tags.wrapping_add(1);
                    prop_assert_eq!(m.mark(first, n, tag), Ok(()), "mark({}, {})", first, n);
                    for g in first..first + n {
                        r.used[g] = true;
                    }
                    r.slots.push((first, n, tag));
                }
                Op::Free(i) => {
                    if r.slots.is_empty() {
                        prop_assert!(m.free(0, 1).is_err());
                        continue;
                    }
                    let (f, n, _) = r.slots.swap_remove(i % r.slots.len());
                    prop_assert_eq!(m.free(f, n), Ok(()));
                    for g in f..f + n {
                        r.used[g] = false;
                    }
                }
            }
            prop_assert_eq!(m.used_granules(), r.used.iter().filter(|&&u| u).count());
            prop_assert_eq!(m.slots(), r.slots.len());
            prop_assert_eq!(m.is_empty(), r.slots.is_empty());
            // The bound never refuses a request that fits.
            prop_assert!(m.free_run_bound() >= m.largest_free_run());
            prop_assert_eq!(
                m.largest_free_run(),
                r.runs().iter().map(|&(_, l)| l).max().unwrap_or(0)
            );
        }
        for g in 0..GRANULES {
            let want = r.slots.iter().copied().find(|&(f, n, _)| g >= f && g < f + n);
            prop_assert_eq!(m.tagged_slot_at(g), want, "tagged_slot_at({})", g);
            let want = want.map(|(f, n, _)| (f, n));
            prop_assert_eq!(m.slot_at(g), want, "slot_at({})", g);
            prop_assert_eq!(m.is_used(g), want.is_some(), "is_used({})", g);
            prop_assert_eq!(
                m.slot_at_offset(g * GRANULE + GRANULE - 1),
                want.map(|(f, n)| (f * GRANULE, n * GRANULE)),
                "slot_at_offset({})", g * GRANULE + GRANULE - 1
            );
        }
        let mut sorted = r.slots.clone();
        sorted.sort_unstable();
        prop_assert_eq!(m.each_slot().collect::<Vec<_>>(), sorted, "each_slot()");
        for &(f, _, t) in &r.slots {
            prop_assert_eq!(m.tag(f), Some(t), "tag({})", f);
        }
        for (f, n, _) in r.slots.drain(..) {
            prop_assert_eq!(m.free(f, n), Ok(()));
        }
        prop_assert!(m.is_empty());
        prop_assert_eq!(m.alloc(GRANULES, 0), Some(0), "every freed granule is reusable");
    }

    /// Fragmentation bound: with best fit, filling a page with one size and freeing every
    /// other slot never makes a request of that size fail while a hole of its size exists,
    /// and a page whose free space is all in holes smaller than n granules is the only way
    /// a request of n fails.
    #[test]
    fn refusal_only_without_a_fitting_hole(sizes in prop::collection::vec(1usize..=32, 1..200), n in 1usize..=32) {
        let m = PageMap::new();
        let mut live = Vec::new();
        for s in sizes {
            if let Some(f) = m.alloc(s, 0) { live.push((f, s)); }
        }
        for (i, &(f, s)) in live.iter().enumerate() {
            if i % 2 == 0 { m.free(f, s).unwrap(); }
        }
        let fits = m.largest_free_run() >= n;
        prop_assert_eq!(m.alloc(n, 0).is_some(), fits);
    }
}
