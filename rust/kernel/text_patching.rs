// SPDX-License-Identifier: GPL-2.0

//! Text patching: changing executable memory through a temporary writable alias.
//!
//! C header: [`include/linux/text-patching.h`](srctree/include/linux/text-patching.h)
//!
//! Kernel text is never writable: `text_poke_copy_locked()` and `text_poke_set_locked()`
//! write through a temporary mapping that only the patching CPU sees, serialised by
//! `text_mutex`. Here that rule is a type: the writes take a [`TextMutexHeld`], which only
//! [`TextMutexGuard::lock()`] (or, for the length of a closure, a caller that promises it
//! holds the mutex) can give, and they write only inside an [`ExecMem`] allocation that the
//! caller borrows.
//!
//! The writes are not atomic per instruction: a CPU that executes the bytes while they
//! change may run a torn instruction. That is the callers' protocol, as for the C
//! functions, so the writes are `unsafe`: fresh memory and memory that nothing branches to
//! any more may always be written.

use crate::bindings;
use crate::error::code::EINVAL;
use crate::error::code::EIO;
use crate::error::Result;
use crate::execmem::ExecMem;
use crate::ffi::c_int;
use crate::ffi::c_void;
use crate::types::NotThreadSafe;
use core::marker::PhantomData;

/// Proof that the current task holds `text_mutex` for the lifetime `'a`.
///
/// Not [`Send`]: the mutex is held by a task.
pub struct TextMutexHeld<'a> {
    _held: PhantomData<&'a ()>,
    _not_send: NotThreadSafe,
}

impl TextMutexHeld<'_> {
    /// Runs `f` with the proof that the current task holds `text_mutex`, for a caller that
    /// took it itself (a C caller, through an `_locked` entry point); checked by lockdep.
    ///
    /// # Safety
    ///
    /// The current task holds `text_mutex`, and keeps it until `f` returns.
    pub unsafe fn with_assumed<R>(f: impl FnOnce(&TextMutexHeld<'_>) -> R) -> R {
        // SAFETY: `text_mutex` is a statically initialised mutex.
        unsafe { bindings::mutex_assert_is_held(&raw mut bindings::text_mutex) };
        let held = TextMutexHeld {
            _held: PhantomData,
            _not_send: NotThreadSafe,
        };
        f(&held)
    }

    /// Copies `src` to `offset` bytes into `mem`, with `text_poke_copy_locked()`.
    ///
    /// Returns `EINVAL` if the range is not inside `mem`, `EIO` if the C function refused.
    ///
    /// # Safety
    ///
    /// No CPU executes the bytes of `mem` in `offset..offset + src.len()` while they change.
    pub unsafe fn copy(&self, mem: &ExecMem, offset: usize, src: &[u8]) -> Result {
        let dst = mem.range(offset, src.len()).ok_or(EINVAL)?;
        if src.is_empty() {
            return Ok(());
        }
        // SAFETY: `text_mutex` is held (`self`); `dst` and `src.len()` bytes from it lie
        // inside executable memory that `mem` keeps mapped, which nothing executes (the
        // caller's guarantee); `src` is a valid slice that cannot overlap it (the memory is
        // never mapped writable).
        let ret = unsafe {
            bindings::text_poke_copy_locked(
                dst.cast::<c_void>(),
                src.as_ptr().cast::<c_void>(),
                src.len(),
                false,
            )
        };
        if ret.is_null() {
            return Err(EIO);
        }
        Ok(())
    }

    /// Sets `len` bytes at `offset` bytes into `mem` to `byte`, with
    /// `text_poke_set_locked()`.
    ///
    /// Returns `EINVAL` if the range is not inside `mem`, `EIO` if the C function refused.
    ///
    /// # Safety
    ///
    /// No CPU executes the bytes of `mem` in `offset..offset + len` while they change.
    pub unsafe fn set(&self, mem: &ExecMem, offset: usize, byte: u8, len: usize) -> Result {
        let dst = mem.range(offset, len).ok_or(EINVAL)?;
        if len == 0 {
            return Ok(());
        }
        // SAFETY: `text_mutex` is held (`self`); `dst` and `len` bytes from it lie inside
        // executable memory that `mem` keeps mapped, which nothing executes (the caller's
        // guarantee).
        let ret =
            unsafe { bindings::text_poke_set_locked(dst.cast::<c_void>(), c_int::from(byte), len) };
        if ret.is_null() {
            return Err(EIO);
        }
        Ok(())
    }
}

/// `text_mutex`, held from [`TextMutexGuard::lock()`] until the guard is dropped.
///
/// # Examples
///
/// ```
/// use kernel::execmem::{ExecMem, Type};
/// use kernel::text_patching::TextMutexGuard;
///
/// let mem = ExecMem::alloc_rox(Type::KPROBES, 1)?;
/// let text = TextMutexGuard::lock();
/// // Fill the page with INT3, then put a RET at its start.
/// // SAFETY: nothing knows of the page yet, so nothing executes it.
/// unsafe { text.held().set(&mem, 0, 0xcc, mem.size())? };
/// // SAFETY: as above.
/// unsafe { text.held().copy(&mem, 0, &[0xc3])? };
/// // SAFETY: the page is mapped and readable.
/// assert_eq!(unsafe { *(mem.addr() as *const u8) }, 0xc3);
/// # Ok::<(), Error>(())
/// ```
#[must_use = "the mutex is released when the guard is dropped"]
pub struct TextMutexGuard {
    held: TextMutexHeld<'static>,
}

impl TextMutexGuard {
    /// Takes `text_mutex`; may sleep.
    pub fn lock() -> Self {
        // SAFETY: `text_mutex` is a statically initialised mutex; it is released when the
        // guard is dropped.
        unsafe { bindings::mutex_lock(&raw mut bindings::text_mutex) };
        Self {
            held: TextMutexHeld {
                _held: PhantomData,
                _not_send: NotThreadSafe,
            },
        }
    }

    /// The proof that `text_mutex` is held, for as long as the guard is borrowed.
    pub fn held(&self) -> &TextMutexHeld<'_> {
        &self.held
    }
}

impl Drop for TextMutexGuard {
    fn drop(&mut self) {
        // SAFETY: this task took `text_mutex` in `lock()`, and no `TextMutexHeld` borrowed
        // from the guard outlives it.
        unsafe { bindings::mutex_unlock(&raw mut bindings::text_mutex) };
    }
}

#[cfg(CONFIG_RUST_EXECMEM_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_text_patching)]
mod tests {
    use super::*;
    use crate::execmem::Type;
    use crate::page::PAGE_SIZE;

    fn byte(mem: &ExecMem, offset: usize) -> u8 {
        let p = mem.range(offset, 1).unwrap_or(core::ptr::null_mut());
        assert!(!p.is_null());
        // SAFETY: `p` lies inside the mapped, readable allocation.
        unsafe { core::ptr::read_volatile(p) }
    }

    #[test]
    fn set_copy_and_bounds() -> Result {
        let mem = ExecMem::alloc_rox(Type::KPROBES, 1)?;
        let text = TextMutexGuard::lock();
        let held = text.held();
        // SAFETY: nothing knows of the page, so nothing executes it (likewise below).
        unsafe { held.set(&mem, 0, 0xcc, PAGE_SIZE)? };
        // SAFETY: as above.
        unsafe { held.copy(&mem, 100, &[0x90, 0x90, 0xc3])? };
        assert_eq!(byte(&mem, 99), 0xcc);
        assert_eq!(byte(&mem, 100), 0x90);
        assert_eq!(byte(&mem, 102), 0xc3);
        assert_eq!(byte(&mem, 103), 0xcc);
        // SAFETY: as above.
        let across_the_end = unsafe { held.copy(&mem, PAGE_SIZE - 1, &[0, 0]) };
        assert_eq!(across_the_end, Err(EINVAL));
        // SAFETY: as above.
        assert_eq!(unsafe { held.set(&mem, PAGE_SIZE, 0xcc, 1) }, Err(EINVAL));
        // SAFETY: as above.
        assert_eq!(unsafe { held.set(&mem, 1, 0xcc, usize::MAX) }, Err(EINVAL));
        assert_eq!(byte(&mem, PAGE_SIZE - 1), 0xcc);
        Ok(())
    }
}
