//! Model checks (loom) of the lock-free lookups of mm/execslot/placement.rs against
//! serialised changes. The placement module is built on loom's atomics with `--cfg loom`
//! (a target directory of its own keeps the two builds apart):
//!
//!     RUSTFLAGS="--cfg loom" cargo test --release --test loom --target-dir target/loom
//!
//! Each test explores every interleaving of a few threads, and every value that loom's
//! memory model lets each load read, and checks that:
//!
//! - a lookup of granule `g` returns `None` or exactly a slot, as (first granule,
//!   granules, tag), that holds `g` and that a writer marked with that tag: never two
//!   slots merged, never a part of one, never a slot with the tag of another; and the
//!   contents that the writer wrote before [`PageMap::mark`] are visible to the reader
//!   (loom reports a read of them that does not happen after the write);
//! - a lookup of a granule of a slot that is live for the whole test returns exactly that
//!   slot, whatever its neighbours do meanwhile;
//! - a slot appears and goes at once for each reader: once found, it is found at every
//!   granule until it is freed, and once not found any more, never found again;
//! - [`PageMap::each_slot`] yields such slots only, in address order, without overlap,
//!   and every slot that is live for the whole test.
//!
//! Every mark has a tag of its own (its index among the changes; the live slots have tags
//! from [`LIVE_TAG`]), so that the test knows which mark a reader found, also when the
//! same place and size is marked again, as the allocator does for another cache.
#![cfg(loom)]

use execslot_host::placement::PageMap;
use loom::cell::UnsafeCell;
use loom::sync::Mutex;
use loom::thread;
use std::rc::Rc;

/// Tag of the first live slot; marks made by the writers have tags below it.
const LIVE_TAG: u8 = 200;

/// A slot as a lookup returns it: first granule, granules, tag.
type Slot = (usize, usize, u8);

/// A change made by a writer, with the writers' lock held when there are several writers.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Write the slot's contents, then [`PageMap::mark`] it.
    Mark(usize, usize),
    /// [`PageMap::free`].
    Free(usize, usize),
}

/// What a reader does.
#[derive(Clone, Copy, Debug)]
enum Read {
    /// [`PageMap::slot_at`] of a granule.
    At(usize),
    /// [`PageMap::is_used`] of a granule.
    Used(usize),
    /// [`PageMap::each_slot`].
    Each,
}

struct Shared {
    map: PageMap,
    /// Stands for the contents of the slot that each change marks, in the order of
    /// [`Spec::ops`]: written before the slot is marked, read by a lookup that found the
    /// slot. loom reports a read that does not happen after the write.
    contents: Vec<UnsafeCell<usize>>,
    /// The writers' lock (the owning cache's mutex in the kernel).
    lock: Mutex<()>,
}

struct Spec {
    /// Slots marked before any thread starts and never freed.
    live: &'static [(usize, usize)],
    /// One list of changes per writer thread; a slot is marked once at most.
    writers: &'static [&'static [Op]],
    /// One list of reads per reader thread.
    readers: &'static [&'static [Read]],
}

impl Spec {
    /// All changes, writer after writer, each with its index in [`Shared::contents`].
    fn ops(&self) -> impl Iterator<Item = (usize, Op)> + '_ {
        self.writers
            .iter()
            .flat_map(|w| w.iter().copied())
            .enumerate()
    }

    /// The live slots, with their tags.
    fn live(&self) -> impl Iterator<Item = Slot> + '_ {
        (LIVE_TAG..).zip(self.live).map(|(t, &(f, n))| (f, n, t))
    }

    /// The live slot that holds `g`.
    fn live_at(&self, g: usize) -> Option<Slot> {
        self.live().find(|&(f, n, _)| f <= g && g < f + n)
    }

    /// The slots that the writers mark, with their tags, which are their indices in
    /// [`Spec::ops`].
    fn marks(&self) -> impl Iterator<Item = Slot> + '_ {
        self.ops().filter_map(|(i, op)| match op {
            Op::Mark(f, n) => Some((f, n, i as u8)),
            Op::Free(..) => None,
        })
    }

    /// Checks a slot that a lookup of granule `g` returned: it is a live slot, or one that
    /// a writer marks, with its tag, holds `g`, and its contents are visible.
    fn check_found(&self, sh: &Shared, g: usize, slot: Slot) {
        let (f, n, tag) = slot;
        assert!(
            f <= g && g < f + n,
            "granule {g}: {slot:?} does not hold it"
        );
        if self.live().any(|l| l == slot) {
            return;
        }
        if !self.marks().any(|m| m == slot) {
            panic!("granule {g}: {slot:?} is not a slot that was marked");
        }
        let i = usize::from(tag);
        // SAFETY: the cell is only written before the slot is marked; loom checks that
        // this read happens after that write.
        let got = sh.contents[i].with(|p| unsafe { *p });
        assert_eq!(got, i + 1, "contents of {slot:?}");
    }

    /// Whether a writer frees the slot that change `i` marks (the first free of its place
    /// and size after it).
    fn freed(&self, slot: Slot) -> bool {
        let (f0, n0, i) = slot;
        self.ops()
            .skip(usize::from(i))
            .any(|(_, op)| matches!(op, Op::Free(f, n) if (f, n) == (f0, n0)))
    }

    fn check_at(&self, sh: &Shared, g: usize, seen: &mut Vec<(Slot, bool)>) {
        let got = sh.map.tagged_slot_at(g);
        if let Some(live) = self.live_at(g) {
            assert_eq!(
                got,
                Some(live),
                "granule {g} of a live slot: got {got:?}, want exactly {live:?}"
            );
        }
        if let Some(s) = got {
            self.check_found(sh, g, s);
        }
        // A slot appears at once and goes at once: once this reader found it, it finds it
        // at every granule until it is freed, and once it did not find it any more, it
        // never finds it again.
        for s in self.marks() {
            let (f, n, _) = s;
            if g < f || g >= f + n {
                continue;
            }
            let i = seen.iter().position(|&(t, _)| t == s);
            if got == Some(s) {
                match i {
                    Some(i) => assert!(!seen[i].1, "granule {g}: {s:?} found again once gone"),
                    None => seen.push((s, false)),
                }
            } else if let Some(i) = i {
                assert!(
                    self.freed(s),
                    "granule {g}: got {got:?} after {s:?} was found, which is never freed"
                );
                seen[i].1 = true;
            }
        }
    }

    fn check_used(&self, sh: &Shared, g: usize) {
        if self.live_at(g).is_some() {
            assert!(sh.map.is_used(g), "granule {g} of a live slot not in use");
        } else {
            // Some granules are never marked: never in use.
            let marked = self
                .ops()
                .any(|(_, op)| matches!(op, Op::Mark(f, n) if f <= g && g < f + n));
            assert!(
                marked || !sh.map.is_used(g),
                "granule {g} never marked, in use"
            );
        }
    }

    fn check_each(&self, sh: &Shared) {
        let mut end = 0;
        let mut seen = Vec::new();
        for s in sh.map.each_slot() {
            assert!(s.0 >= end, "each_slot(): {s:?} out of order or overlapping");
            end = s.0 + s.1;
            self.check_found(sh, s.0, s);
            seen.push(s);
        }
        for l in self.live() {
            assert!(
                seen.contains(&l),
                "each_slot() missed live slot {l:?}: {seen:?}"
            );
        }
    }

    /// One read; `seen` holds the slots that this reader found, and whether they went.
    fn read(&self, sh: &Shared, r: Read, seen: &mut Vec<(Slot, bool)>) {
        match r {
            Read::At(g) => self.check_at(sh, g, seen),
            Read::Used(g) => self.check_used(sh, g),
            Read::Each => self.check_each(sh),
        }
    }

    /// Explores every interleaving (and every value that loom's memory model lets a load
    /// read); returns the number of executions.
    fn run(&'static self) -> usize {
        assert!(
            self.ops().count() < usize::from(LIVE_TAG),
            "too many changes for the tags"
        );
        let runs = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = runs.clone();
        loom::model(move || {
            counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let map = PageMap::new();
            for (f, n, t) in self.live() {
                assert_eq!(map.mark(f, n, t), Ok(()));
            }
            // An `Rc`, not loom's `Arc`: loom runs the threads of a model on one OS thread
            // and its `spawn` does not need `Send`, and a loom `Arc` adds an operation to
            // explore at every clone and drop.
            let sh = Rc::new(Shared {
                map,
                contents: self.ops().map(|_| UnsafeCell::new(0)).collect(),
                lock: Mutex::new(()),
            });
            let mut threads = Vec::new();
            // Writers first. loom first runs the threads one after the other, then moves
            // operations earlier where they race; it forgets a reader's load of an atomic
            // that the writer then loads before it stores to it (tokio-rs/loom#166, #392),
            // so with the readers first it would miss orders in which such a load comes
            // after the store. Readers that start after the writers are moved earlier,
            // store by store.
            let mut base = 0;
            for &ops in self.writers {
                let sh = sh.clone();
                let several = self.writers.len() > 1;
                threads.push(thread::spawn(move || {
                    for (i, &op) in ops.iter().enumerate() {
                        let _guard = several.then(|| sh.lock.lock());
                        match op {
                            Op::Mark(f, n) => {
                                sh.contents[base + i].with_mut(|p| {
                                    // SAFETY: written once, before the slot is marked.
                                    unsafe { *p = base + i + 1 }
                                });
                                assert_eq!(sh.map.mark(f, n, (base + i) as u8), Ok(()));
                            }
                            Op::Free(f, n) => assert_eq!(sh.map.free(f, n), Ok(())),
                        }
                    }
                }));
                base += ops.len();
            }
            for &reads in self.readers {
                let sh = sh.clone();
                threads.push(thread::spawn(move || {
                    let mut seen = Vec::new();
                    for &r in reads {
                        self.read(&sh, r, &mut seen);
                    }
                }));
            }
            for t in threads {
                t.join().unwrap();
            }
        });
        let runs = runs.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!("{runs} executions");
        runs
    }
}

/// Two threads: a slot is published and unpublished at once, by the store into its first
/// granule: a reader that looks at its granules one after the other finds it nowhere, then
/// everywhere, then nowhere.
#[test]
fn slot_appears_and_goes_at_once() {
    static SPEC: Spec = Spec {
        live: &[],
        writers: &[&[Op::Mark(1, 3), Op::Free(1, 3)]],
        readers: &[&[
            Read::At(1),
            Read::At(3),
            Read::At(2),
            Read::At(1),
            Read::At(3),
        ]],
    };
    SPEC.run();
}

/// Two threads: a slot is marked, freed and marked again with another size right after a
/// live slot, while a reader looks at the live slot's last granule and at the neighbour.
#[test]
fn neighbour_after_a_live_slot() {
    static SPEC: Spec = Spec {
        live: &[(0, 2)],
        writers: &[&[Op::Mark(2, 2), Op::Free(2, 2), Op::Mark(2, 1)]],
        readers: &[&[Read::At(1), Read::At(3), Read::Used(2)]],
    };
    SPEC.run();
}

/// Two threads: the same before a live slot; the reader looks at the live slot's first
/// granule and at the neighbour.
#[test]
fn neighbour_before_a_live_slot() {
    static SPEC: Spec = Spec {
        live: &[(2, 2)],
        writers: &[&[Op::Mark(0, 2), Op::Free(0, 2), Op::Mark(1, 1)]],
        readers: &[&[Read::At(2), Read::At(1), Read::Used(0)]],
    };
    SPEC.run();
}

/// Two threads: a writer reshapes the slots over granules 0..3, so that a reader that
/// mixed what it saw of two slots would find a merge or a part of one; the reader looks at
/// the granules in the middle.
#[test]
fn reshaped_slots() {
    static SPEC: Spec = Spec {
        live: &[],
        writers: &[&[Op::Mark(0, 3), Op::Free(0, 3), Op::Mark(1, 2)]],
        readers: &[&[Read::At(2), Read::At(1), Read::At(2)]],
    };
    SPEC.run();
}

/// Three threads: the same with two readers, one granule each, over granules 0..3.
#[test]
fn reshaped_slots_two_readers() {
    static SPEC: Spec = Spec {
        live: &[],
        writers: &[&[Op::Mark(0, 2), Op::Free(0, 2), Op::Mark(1, 2)]],
        readers: &[&[Read::At(1)], &[Read::At(2)]],
    };
    SPEC.run();
}

/// Three threads: two writers (serialised by their lock) change the slots on both sides
/// of a live slot while a reader looks at the live slot and at a neighbour.
#[test]
fn two_writers_around_a_live_slot() {
    static SPEC: Spec = Spec {
        live: &[(1, 2)],
        writers: &[
            &[Op::Mark(0, 1), Op::Free(0, 1)],
            &[Op::Mark(3, 2), Op::Free(3, 2)],
        ],
        readers: &[&[Read::At(2), Read::At(1), Read::At(3)]],
    };
    SPEC.run();
}

/// Two threads: each_slot() while a slot is freed and a slot that overlaps it is marked.
#[test]
fn each_slot_while_slots_reshape() {
    static SPEC: Spec = Spec {
        live: &[(4, 1)],
        writers: &[&[Op::Mark(0, 2), Op::Free(0, 2), Op::Mark(1, 2)]],
        readers: &[&[Read::Each]],
    };
    SPEC.run();
}

/// Two threads: each_slot() while the neighbours of a live slot change.
#[test]
fn each_slot_while_neighbours_change() {
    static SPEC: Spec = Spec {
        live: &[(1, 2)],
        writers: &[&[
            Op::Mark(3, 2),
            Op::Mark(0, 1),
            Op::Free(3, 2),
            Op::Mark(3, 1),
        ]],
        readers: &[&[Read::Each]],
    };
    SPEC.run();
}

/// Two threads: a slot is freed and the same place and size is marked again with another
/// tag, as when a slot of one cache goes and one of another cache takes its place; the
/// reader must get each slot with its own tag, never one with the other's.
#[test]
fn same_place_another_owner() {
    static SPEC: Spec = Spec {
        live: &[],
        writers: &[&[Op::Mark(0, 2), Op::Free(0, 2), Op::Mark(0, 2)]],
        readers: &[&[Read::At(1), Read::At(0), Read::At(1)]],
    };
    SPEC.run();
}

/// The design that the tag in the entry replaced: the owner of a slot kept beside the
/// entries, set before the mark and cleared after the free, and read after the lookup.
/// loom finds the lookup that pairs a slot with an owner it never had (here: none). This
/// test passes when loom finds that failure.
#[test]
#[should_panic(expected = "paired with owner")]
fn owner_beside_the_entries_is_racy() {
    use loom::sync::atomic::AtomicU8;
    use loom::sync::atomic::Ordering;

    const NONE: u8 = u8::MAX;
    struct Page {
        map: PageMap,
        owner: [AtomicU8; 4],
    }
    loom::model(|| {
        let page = Rc::new(Page {
            map: PageMap::new(),
            owner: core::array::from_fn(|_| AtomicU8::new(NONE)),
        });
        let w = page.clone();
        let writer = thread::spawn(move || {
            w.owner[0].store(1, Ordering::Relaxed);
            assert_eq!(w.map.mark(0, 2, 0), Ok(()));
            assert_eq!(w.map.free(0, 2), Ok(()));
            w.owner[0].store(NONE, Ordering::Relaxed);
        });
        // The reader starts after the writer, as in `Spec::run()`.
        let reader = thread::spawn(move || {
            if let Some((first, n)) = page.map.slot_at(1) {
                let owner = page.owner[first].load(Ordering::Relaxed);
                assert_eq!(owner, 1, "slot {:?} paired with owner {owner}", (first, n));
            }
        });
        writer.join().unwrap();
        reader.join().unwrap();
    });
}
