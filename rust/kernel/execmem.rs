// SPDX-License-Identifier: GPL-2.0

//! Executable memory.
//!
//! C header: [`include/linux/execmem.h`](srctree/include/linux/execmem.h)
//!
//! [`ExecMem`] owns an allocation from `execmem_alloc()` that is read-only and executable
//! for as long as it lives, and gives it back with `execmem_free()` when it is dropped. Its
//! contents can only be changed by text patching, never
//! through a writable mapping of its own: the memory is never writable and executable at
//! once.
//!
//! Built on x86 only for now, its one user: elsewhere `set_memory_rox()` may be a static
//! inline, which has no binding.

use crate::bindings;
use crate::error::code::EINVAL;
use crate::error::code::ENOMEM;
use crate::error::to_result;
use crate::error::Result;
use crate::ffi::c_void;
use crate::page::PAGE_SIZE;
use core::ptr::NonNull;

/// A type of executable memory, as `enum execmem_type`: where the architecture places it
/// and with which permissions.
///
/// # Invariants
///
/// The value is below `EXECMEM_TYPE_MAX`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Type(bindings::execmem_type);

impl Type {
    /// Memory for kprobes' instruction slots.
    pub const KPROBES: Self = Self(bindings::execmem_type_EXECMEM_KPROBES);
    /// Memory for ftrace trampolines.
    pub const FTRACE: Self = Self(bindings::execmem_type_EXECMEM_FTRACE);
    /// Memory for BPF programs.
    pub const BPF: Self = Self(bindings::execmem_type_EXECMEM_BPF);

    /// The type whose C value is `raw`, if there is one.
    pub fn from_raw(raw: bindings::execmem_type) -> Option<Self> {
        // INVARIANT: checked here.
        (raw < bindings::execmem_type_EXECMEM_TYPE_MAX).then_some(Self(raw))
    }

    /// The C value of the type.
    pub const fn as_raw(self) -> bindings::execmem_type {
        self.0
    }

    /// Whether memory of this type also serves `other`: both are allocated from the same
    /// ranges with the same permissions, alignment and flags (`execmem_same_range()`).
    pub fn same_range(self, other: Self) -> bool {
        // SAFETY: both types are in range (the type invariant), which is all that
        // `execmem_same_range()` indexes by; execmem is initialised before Rust code runs.
        unsafe { bindings::execmem_same_range(self.0, other.0) }
    }

    /// Whether execmem hands out memory of this type read-only from a cache of ROX pages.
    pub fn is_rox(self) -> bool {
        // SAFETY: `execmem_is_rox()` indexes execmem's ranges by type, and the type is in
        // range (the type invariant); execmem is initialised before any Rust code runs.
        unsafe { bindings::execmem_is_rox(self.0) }
    }
}

/// Whole pages of read-only executable memory from `execmem_alloc()`, freed on drop.
///
/// # Invariants
///
/// `ptr` is page aligned and is the start of a live allocation of `size` bytes (a whole
/// number of pages) from `execmem_alloc()` of type `ty`, read-only and executable, owned by
/// this value.
///
/// # Examples
///
/// ```
/// use kernel::execmem::{ExecMem, Type};
/// use kernel::page::PAGE_SIZE;
///
/// let mem = ExecMem::alloc_rox(Type::KPROBES, 1)?;
/// assert_eq!(mem.addr() % PAGE_SIZE, 0);
/// assert_eq!(mem.size(), PAGE_SIZE);
/// assert!(mem.contains(mem.addr() + PAGE_SIZE - 1));
/// assert!(!mem.contains(mem.addr() + PAGE_SIZE));
/// // Dropping `mem` gives the page back to execmem.
/// # Ok::<(), Error>(())
/// ```
pub struct ExecMem {
    ptr: NonNull<c_void>,
    size: usize,
    ty: Type,
}

// SAFETY: the allocation is not tied to the thread that made it: any thread may read it,
// free it, or patch it (text patching serialises itself with `text_mutex`).
unsafe impl Send for ExecMem {}

// SAFETY: `&ExecMem` only gives the address and size of the allocation.
unsafe impl Sync for ExecMem {}

impl ExecMem {
    /// Allocates `pages` pages of executable memory of type `ty`, read-only and executable
    /// from the start.
    ///
    /// Where execmem has a ROX cache for `ty` the memory comes from it; otherwise (on x86-64
    /// only under Xen PV, which lacks large pages) the new pages are made read-only and
    /// executable here, once, before anyone can see them. Their contents are unspecified:
    /// fill them with text patching before use.
    pub fn alloc_rox(ty: Type, pages: usize) -> Result<Self> {
        let size = pages.checked_mul(PAGE_SIZE).ok_or(EINVAL)?;
        // `set_memory_rox()` counts pages in an `int`.
        let npages = i32::try_from(pages).map_err(|_| EINVAL)?;
        if size == 0 {
            return Err(EINVAL);
        }
        // SAFETY: `ty` is a valid type (type invariant); any size may be asked for.
        let ptr = NonNull::new(unsafe { bindings::execmem_alloc(ty.0, size) }).ok_or(ENOMEM)?;
        // INVARIANT: the allocation is owned by the new value; what is left to prove (page
        // alignment, permissions) is checked below, and the value is dropped (the memory
        // freed) on failure.
        let mem = Self { ptr, size, ty };
        if mem.addr() % PAGE_SIZE != 0 {
            return Err(EINVAL);
        }
        if !ty.is_rox() {
            // SAFETY: the range is the whole of an allocation that nothing else knows of
            // yet; `execmem_free()` restores the permissions (`VM_FLUSH_RESET_PERMS`).
            to_result(unsafe { bindings::set_memory_rox(mem.addr(), npages) })?;
        }
        Ok(mem)
    }

    /// Address of the first byte.
    pub fn addr(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// Size in bytes, a whole number of pages.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The type the memory was allocated with.
    pub fn ty(&self) -> Type {
        self.ty
    }

    /// Whether `addr` lies inside the allocation.
    pub fn contains(&self, addr: usize) -> bool {
        addr.wrapping_sub(self.addr()) < self.size()
    }

    /// Pointer to the byte at `offset`, if `len` bytes from there lie inside the allocation.
    pub fn range(&self, offset: usize, len: usize) -> Option<*mut u8> {
        let end = offset.checked_add(len)?;
        (end <= self.size()).then(|| self.ptr.as_ptr().cast::<u8>().wrapping_add(offset))
    }
}

impl Drop for ExecMem {
    fn drop(&mut self) {
        // SAFETY: the allocation came from `execmem_alloc()` and is owned by `self` (type
        // invariant); nothing can reach it through `self` any more.
        unsafe { bindings::execmem_free(self.ptr.as_ptr()) };
    }
}

#[cfg(CONFIG_RUST_EXECMEM_KUNIT_TEST)]
#[macros::kunit_tests(rust_kernel_execmem)]
mod tests {
    use super::*;

    #[test]
    fn alloc_and_bounds() -> Result {
        let mem = ExecMem::alloc_rox(Type::KPROBES, 1)?;
        assert_eq!(mem.addr() % PAGE_SIZE, 0);
        assert_eq!(mem.size(), PAGE_SIZE);
        assert_eq!(mem.ty(), Type::KPROBES);
        assert!(mem.contains(mem.addr()));
        assert!(!mem.contains(mem.addr() - 1));
        assert!(mem.range(PAGE_SIZE - 1, 1).is_some());
        assert!(mem.range(PAGE_SIZE, 1).is_none());
        assert!(mem.range(usize::MAX, 2).is_none());
        Ok(())
    }

    #[test]
    fn bad_sizes() {
        assert_eq!(ExecMem::alloc_rox(Type::FTRACE, 0).err(), Some(EINVAL));
        assert_eq!(
            ExecMem::alloc_rox(Type::FTRACE, usize::MAX).err(),
            Some(EINVAL)
        );
        assert_eq!(
            Type::from_raw(bindings::execmem_type_EXECMEM_TYPE_MAX),
            None
        );
        assert_eq!(
            Type::from_raw(bindings::execmem_type_EXECMEM_FTRACE),
            Some(Type::FTRACE)
        );
    }
}
