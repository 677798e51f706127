// SPDX-License-Identifier: GPL-2.0

//! KUnit tests of the placement and of the allocator (`CONFIG_EXECSLOT_KUNIT_TEST`).

#[kernel::macros::kunit_tests(execslot_placement)]
mod placement {
    use crate::placement::*;

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
        while let Some(g) = m.alloc(1, 0) {
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
        assert_eq!(m.alloc(19, 1), Some(0));
        assert_eq!(m.alloc(19, 2), Some(19));
        let (off, size) = (19 * GRANULE, 19 * GRANULE);
        assert_eq!(m.slot_at_offset(off), Some((off, size)));
        assert_eq!(m.slot_at_offset(off + size - 1), Some((off, size)));
        assert_eq!(m.slot_at_offset(off + size), None);
        assert_eq!(m.free(20, 18), Err(PlacementError::NotASlot));
        assert_eq!(m.free(19, 19), Ok(()));
        assert_eq!(m.slot_at_offset(off), None);
        assert_eq!(m.slot_at_offset(off - 1), Some((0, size)));
    }

    /// A page refuses at once a request longer than its bound on the longest free run;
    /// only a walk of the whole page lowers the bound, and a free raises it again.
    #[test]
    fn free_run_bound_after_walks_marks_and_frees() {
        let m = PageMap::new();
        assert_eq!(m.free_run_bound(), GRANULES);
        // Nineteen 13-granule slots (208-byte trampolines) leave 9 granules at the end.
        for i in 0..19 {
            assert_eq!(m.alloc(13, 0), Some(i * 13));
        }
        assert_eq!(m.find(13), None);
        assert_eq!(m.free_run_bound(), 9);
        // An exact fit ends the walk early and leaves the bound; so does a direct mark.
        assert_eq!(m.find(9), Some((247, 9)));
        assert_eq!(m.mark(247, 9, 0), Ok(()));
        assert_eq!(m.free_run_bound(), 9);
        assert_eq!(m.find(1), None);
        assert_eq!(m.free_run_bound(), 0);
        // A refused free or mark changes nothing; a free makes the page searched again.
        assert_eq!(m.free(66, 12), Err(PlacementError::NotASlot));
        assert_eq!(m.mark(247, 10, 0), Err(PlacementError::BadSize));
        assert_eq!(m.free_run_bound(), 0);
        assert_eq!(m.free(65, 13), Ok(()));
        assert_eq!(m.free_run_bound(), GRANULES);
        assert_eq!(m.find(13), Some((65, 13)));
    }

    /// One CPU looks up every granule near the slots that another CPU allocates and
    /// frees, with random sizes and tags, in the same page: every answer is `None` or a
    /// slot exactly as it was marked, with its tag, never two neighbours merged or a part
    /// of one, and a slot that stays live (pinned in the middle, its neighbours changing)
    /// is always found.
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

        /// The pinned slot, live throughout, and its tag.
        const PIN: (usize, usize, u8) = (40, 2, 7);
        /// Slots are placed in the first `LIMIT` granules, around the pinned one.
        const LIMIT: usize = 82;
        /// Longest slot, in granules.
        const MAX: usize = 8;
        /// Tags of the slots that change.
        const TAGS: usize = 4;

        struct Shared {
            map: PageMap,
            /// Bit `n - 1 + MAX * tag` of word `first`: a slot (first, n, tag) was marked.
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
        assert_eq!(shared.map.mark(PIN.0, PIN.1, PIN.2), Ok(()));
        let started = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let done = Arc::pin_init(Completion::new(), GFP_KERNEL)?;
        let (s, st, d) = (shared.clone(), started.clone(), done.clone());
        // Unbound: the reader runs on whichever CPU is free, the other one on a
        // two-CPU machine, while this thread changes the slots.
        kernel::workqueue::system_dfl().try_spawn(GFP_KERNEL, move || {
            st.complete_all();
            let mut passes = 0u32;
            while !s.stop.load(Ordering::Relaxed) {
                // Lets the writer run where it shares this CPU (one CPU, no preemption):
                // without it this loop would keep the CPU until the writer stops it.
                passes = passes.wrapping_add(1);
                if passes % 1024 == 0 {
                    kernel::time::delay::fsleep(kernel::time::Delta::from_micros(10));
                }
                for g in 0..LIMIT + 1 {
                    let got = s.map.tagged_slot_at(g);
                    if (PIN.0..PIN.0 + PIN.1).contains(&g) {
                        if got != Some(PIN) {
                            s.pin_missed.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if let Some((first, n, tag)) = got {
                        // The record of (first, n, tag) precedes its marking.
                        let bit = 1u64 << ((n - 1) + MAX * usize::from(tag));
                        let ok = first <= g
                            && g < first + n
                            && (1..=MAX).contains(&n)
                            && usize::from(tag) < TAGS
                            && s.marked
                                .get(first)
                                .is_some_and(|w| w.load(Ordering::Acquire) & bit != 0);
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
            let tag = (seed >> 4) as usize % TAGS;
            if let Some((first, _)) = shared.map.find(n) {
                if first + n <= LIMIT {
                    let bit = 1u64 << ((n - 1) + MAX * tag);
                    shared.marked[first].fetch_or(bit, Ordering::Release);
                    assert_eq!(shared.map.mark(first, n, tag as u8), Ok(()));
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
mod slots {
    use core::ptr;
    use core::sync::atomic::Ordering;

    use kernel::alloc::flags::GFP_KERNEL;
    use kernel::alloc::KBox;
    use kernel::alloc::KVec;
    use kernel::bindings;
    use kernel::error::code::EBUSY;
    use kernel::error::code::EINVAL;
    use kernel::error::code::ERANGE;
    use kernel::error::Result;
    use kernel::execmem::Type;
    use kernel::ffi::c_void;
    use kernel::prelude::*;
    use kernel::sync::rcu;
    use kernel::text_patching::TextMutexGuard;

    use crate::ffi::__execslot_contains;
    use crate::ffi::__execslot_get_kallsym;
    use crate::ffi::__execslot_lookup;
    use crate::ffi::execslot_free_deferred;
    use crate::placement::GRANULE;
    use crate::placement::PAGE_SIZE;
    use crate::slots::remove_page_of;
    use crate::slots::stats;
    use crate::slots::CacheRef;

    /// Takes `text_mutex`, as the C wrappers of the header do around the calls below.
    fn alloc(cache: CacheRef, size: usize) -> Result<usize> {
        let text = TextMutexGuard::lock();
        crate::slots::alloc(text.held(), cache, size)
    }

    fn write(slot: usize, offset: usize, src: &[u8]) -> Result {
        let text = TextMutexGuard::lock();
        // SAFETY: the tests never execute their slots.
        unsafe { crate::slots::write(text.held(), slot, offset, src) }
    }

    fn free(slot: usize) -> Result {
        let text = TextMutexGuard::lock();
        // SAFETY: the tests never execute their slots.
        unsafe { crate::slots::free(text.held(), slot) }
    }

    /// Frees `slot`, then frees it again under the same hold of `text_mutex`, so that no
    /// other user of the shared pages can be given the slot in between; returns both
    /// results.
    fn free_twice(slot: usize) -> (Result, Result) {
        let text = TextMutexGuard::lock();
        // SAFETY: the tests never execute their slots.
        let first = unsafe { crate::slots::free(text.held(), slot) };
        // SAFETY: as above; `text_mutex` is still held, so `slot` went to nobody else.
        let second = unsafe { crate::slots::free(text.held(), slot) };
        (first, second)
    }

    struct TestCache(bindings::execslot_cache);

    // SAFETY: the cache is never written after its definition.
    unsafe impl Sync for TestCache {}

    static TEST: TestCache = TestCache(bindings::execslot_cache {
        name: kernel::str::as_char_ptr_in_const_context(c"execslot_test"),
        type_: Type::KPROBES.as_raw(),
        perf_ksymbol: false,
    });

    fn cache() -> CacheRef {
        // SAFETY: a static that is never written.
        unsafe { CacheRef::new(&TEST.0) }
    }

    fn contains(addr: usize) -> bool {
        let _guard = rcu::read_lock();
        // SAFETY: the RCU read lock is held.
        unsafe { __execslot_contains(addr) }
    }

    fn lookup(addr: usize) -> Option<(usize, usize)> {
        let _guard = rcu::read_lock();
        let (mut start, mut size, mut owner) = (0, 0, ptr::null());
        // SAFETY: the RCU read lock is held and the outputs are valid.
        let found = unsafe { __execslot_lookup(addr, &mut start, &mut size, &mut owner) };
        if found {
            assert!(ptr::eq(owner, cache().as_ptr()));
        }
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
        assert_eq!(free_twice(a), (Ok(()), Err(EINVAL)));
        Ok(())
    }

    /// The table refuses to give a page that holds a slot back to execmem. The slot is a
    /// whole page, so that if the table did give it back, no other user's code would go
    /// with it and the case would fail instead of the kernel.
    #[test]
    fn page_with_a_slot_stays() -> Result {
        let a = alloc(cache(), PAGE_SIZE)?;
        assert_eq!(remove_page_of(a), Err(EBUSY));
        assert!(contains(a));
        assert_eq!(lookup(a), Some((a, PAGE_SIZE)));
        free(a)
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
        assert_eq!(write(a, 8, &data), Ok(()));
        assert_eq!(byte(a + 7), 0xcc);
        assert_eq!(byte(a + 8), 0x90);
        assert_eq!(byte(a + 47), 0x90);
        assert_eq!(write(a, 9, &data), Err(EINVAL));
        assert_eq!(write(a + 16, 0, &data[..1]), Err(EINVAL));
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

    /// A page whose last slot is freed stays as the one spare page of its type, and the
    /// next slot that needs a page takes it: creating and freeing one slot over and over
    /// takes no page from execmem. A second empty page goes back.
    #[test]
    fn one_spare_page() -> Result {
        // Slots that earlier users freed with a grace period go first: the reaper would
        // otherwise empty a page in the middle of the counts below.
        // SAFETY: `execslot_flush_deferred()` only waits for the reaper work; this is
        // process context and `text_mutex`, which the work takes, is not held.
        unsafe { bindings::execslot_flush_deferred() };
        let (_, used, _) = stats(cache());
        // A whole page fits only an empty page: the spare if there is one, then new ones.
        let a = alloc(cache(), PAGE_SIZE)?;
        let b = alloc(cache(), PAGE_SIZE)?;
        assert_eq!(stats(cache()).1, used + 2);
        assert_eq!(stats(cache()).2, 0);
        assert!(contains(a));
        free(a)?;
        assert!(!contains(a));
        assert_eq!(stats(cache()).1, used + 1);
        assert_eq!(stats(cache()).2, 1);
        free(b)?;
        assert_eq!(stats(cache()).1, used);
        assert_eq!(stats(cache()).2, 1);
        for _ in 0..100 {
            let c = alloc(cache(), PAGE_SIZE)?;
            assert_eq!(c, a);
            assert_eq!(stats(cache()).2, 0);
            free(c)?;
            assert_eq!(stats(cache()).2, 1);
        }
        Ok(())
    }

    /// A deferred free keeps the slot live until the reaper ran after a grace period;
    /// meanwhile the slot cannot be freed again.
    #[test]
    fn deferred_free() -> Result {
        let (before, pages, _) = stats(cache());
        let a = alloc(cache(), 100)?;
        {
            // The reaper frees with text_mutex held: holding it here keeps the slot
            // pending for the checks below, whenever the work runs.
            let text = TextMutexGuard::lock();
            // SAFETY: `a` is a live slot that nothing executes.
            assert_eq!(unsafe { execslot_free_deferred(a as *mut c_void) }, 0);
            assert!(contains(a));
            assert_eq!(stats(cache()).0.pending, before.pending + 1);
            // SAFETY: the tests never execute their slots.
            assert_eq!(unsafe { crate::slots::free(text.held(), a) }, Err(EINVAL));
            // SAFETY: as above; refused, since it waits already.
            let again = unsafe { execslot_free_deferred(a as *mut c_void) };
            assert_eq!(again, EINVAL.to_errno());
        }
        // SAFETY: `execslot_flush_deferred()` only waits for the reaper work; this is
        // process context and `text_mutex`, which the work takes, is not held.
        unsafe { bindings::execslot_flush_deferred() };
        assert!(!contains(a));
        let (after, pages_after, _) = stats(cache());
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
            let ret = unsafe {
                __execslot_get_kallsym(cache().as_ptr(), &mut symnum, &mut value, &mut size)
            };
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
            let (before, pages, _) = stats(cache());
            let mut slots = KVec::with_capacity(N, GFP_KERNEL)?;
            for _ in 0..N {
                slots.push(alloc(cache(), size)?, GFP_KERNEL)?;
            }
            let (after, pages_after, _) = stats(cache());
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
            // The emptied pages went back to execmem, but one.
            assert_eq!(stats(cache()).1, pages);
            assert!(stats(cache()).2 <= 1);
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
            write(a, 0, &buf[..size])?;
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
        assert!(after.2 <= 1);
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
        assert!(after.2 <= 1);
        Ok(())
    }

    /// One step of a 32-bit linear congruential generator: the seeded tests' draws.
    fn lcg_next(seed: &mut u32) -> u32 {
        *seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *seed >> 8
    }

    /// Fills the first and the last 16 bytes (all of them if fewer) of the slot of
    /// `size` bytes at `a` with `fill`.
    fn fill_ends(a: usize, size: usize, fill: u8) -> Result {
        let ends = [fill; 16];
        let k = size.min(16);
        write(a, 0, &ends[..k])?;
        write(a, size - k, &ends[..k])
    }

    /// The first byte among the first and the last 16 of the slot of `size` bytes at `a`
    /// that does not read `fill`, as (address, byte); `None` if they all do.
    fn ends_differ(a: usize, size: usize, fill: u8) -> Option<(usize, u8)> {
        (0..size.min(16))
            .flat_map(|j| [a + j, a + size - 1 - j])
            .map(|x| (x, byte(x)))
            .find(|&(_, b)| b != fill)
    }

    /// This cache's counts that every call changes or leaves: slots, bytes, failures.
    fn counts() -> (usize, usize, usize) {
        let st = stats(cache()).0;
        (st.slots, st.bytes_held, st.failures)
    }

    /// Seeded random allocations of any size up to a page (the other random cases stop
    /// at 512 bytes), freed in random order so that holes of every size are reused, with
    /// bad calls mixed in: sizes 0, over a page and `usize::MAX`, frees inside a live
    /// slot, and a second free of a slot just freed. A bad call fails with `EINVAL` and
    /// counts nothing, not even a failure; a new slot overlaps no live one and comes
    /// full of INT3; a live slot keeps the bytes written at its ends and is found by its
    /// last byte; the counts end where they started.
    #[test]
    fn random_sizes_frees_and_bad_input() -> Result {
        // As in `one_spare_page`: the reaper would otherwise empty a page in the middle
        // of the counts. Other users of the shared pages may still take or give back a
        // page meanwhile, so the page count is only checked at the end, as the others do.
        // SAFETY: `execslot_flush_deferred()` only waits for the reaper work; this is
        // process context and `text_mutex`, which the work takes, is not held.
        unsafe { bindings::execslot_flush_deferred() };
        let before = stats(cache());
        let mut live: KBox<[(usize, usize, u8); 64]> = KBox::new([(0, 0, 0); 64], GFP_KERNEL)?;
        let mut seed: u32 = 0x6b43_a9b5;
        for _ in 0..1000 {
            let r = lcg_next(&mut seed);
            let k = r as usize % live.len();
            let (a, size, fill) = live[k];
            let rounded = size.div_ceil(GRANULE) * GRANULE;
            let held = counts();
            if r >> 20 == 0 {
                let bad = [0, PAGE_SIZE + 1 + r as usize % PAGE_SIZE, usize::MAX];
                assert_eq!(alloc(cache(), bad[(r >> 8) as usize % 3]), Err(EINVAL));
                assert_eq!(counts(), held);
            } else if a == 0 {
                let new_size = 1 + lcg_next(&mut seed) as usize % PAGE_SIZE;
                let new_rounded = new_size.div_ceil(GRANULE) * GRANULE;
                // Never 0xcc, the fill of free bytes.
                let new_fill = (lcg_next(&mut seed) & 0x7f) as u8 | 1;
                let new = alloc(cache(), new_size)?;
                for &(b, b_size, _) in live.iter().filter(|e| e.0 != 0) {
                    let b_end = b + b_size.div_ceil(GRANULE) * GRANULE;
                    assert!(new + new_rounded <= b || b_end <= new);
                }
                assert_eq!(ends_differ(new, new_size, 0xcc), None);
                fill_ends(new, new_size, new_fill)?;
                live[k] = (new, new_size, new_fill);
                assert_eq!(counts(), (held.0 + 1, held.1 + new_rounded, held.2));
            } else if r >> 20 == 1 {
                // Inside the slot: its second byte, and its second and last granules
                // when it has more than one (past its end is somebody else's slot).
                let n = if rounded > GRANULE { 3 } else { 1 };
                for inside in [a + 1, a + GRANULE, a + rounded - GRANULE].iter().take(n) {
                    assert_eq!(free(*inside), Err(EINVAL));
                }
                assert_eq!(ends_differ(a, size, fill), None);
                assert_eq!(counts(), held);
            } else {
                assert_eq!(lookup(a + rounded - 1), Some((a, rounded)));
                assert_eq!(ends_differ(a, size, fill), None);
                assert_eq!(free_twice(a), (Ok(()), Err(EINVAL)));
                live[k] = (0, 0, 0);
                assert_eq!(counts(), (held.0 - 1, held.1 - rounded, held.2));
            }
        }
        for &(a, size, fill) in live.iter().filter(|e| e.0 != 0) {
            assert_eq!(ends_differ(a, size, fill), None);
            free(a)?;
        }
        let after = stats(cache());
        assert_eq!(after.0.slots, before.0.slots);
        assert_eq!(after.0.bytes_held, before.0.bytes_held);
        assert_eq!(after.0.failures, before.0.failures);
        assert_eq!(after.1, before.1);
        assert!(after.2 <= 1);
        Ok(())
    }
}
