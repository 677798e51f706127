// SPDX-License-Identifier: GPL-2.0

//! ftrace trampolines in sub-page executable slots.
//!
//! `create_trampoline()` in `arch/x86/kernel/ftrace.c` describes the template
//! (`ftrace_caller` or `ftrace_regs_caller`) and calls [`x86_ftrace_tramp_create`], which
//! takes a slot of the trampoline's size from an execslot cache, builds the trampoline for
//! the slot's address with the pure [`build`] module and writes it with
//! `execslot_write_locked()`: the caller holds `text_mutex`.
//! Slots are never writable, so there is no permission change per trampoline and nothing
//! for `set_ftrace_ops_ro()` to do. The C API is in `asm/ftrace_tramp.h`.
//!
//! The builder refuses a template that returns, branches indirectly or branches to a thunk
//! in the copied range, as their form depends on their address under ITS; it is given the
//! address ranges of the thunks that the configured mitigations build into the kernel.

// The crate root resolves modules next to itself, not in `ftrace_tramp/`.
#[path = "ftrace_tramp/build.rs"]
pub mod build;
#[path = "ftrace_tramp/insn.rs"]
pub mod insn;

use core::ptr;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KVec;
use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::to_result;
use kernel::error::Result;
use kernel::ffi::c_int;
use kernel::ffi::c_uint;
use kernel::ffi::c_ulong;
use kernel::ffi::c_void;
use kernel::pr_warn_once;
use kernel::prelude::*;
use kernel::sync::rcu;

use build::BuildError;
use build::Layout;
use build::Return;
use build::Template;
use build::Thunks;

const __LOG_PREFIX: &[u8] = b"ftrace\0";

/// Largest template accepted: a trampoline must fit in a slot, i.e. in a page.
const MAX_TEMPLATE: usize = kernel::page::PAGE_SIZE - 64;

/// Thunks in each per-register thunk array: one per register (`asm/GEN-for-each-reg.h`).
#[cfg(CONFIG_MITIGATION_RETPOLINE)]
const NR_REGS: usize = 16;

/// The per-register thunk array that starts at `first`, and `before` bytes before it.
#[cfg(CONFIG_MITIGATION_RETPOLINE)]
fn thunk_array<T>(first: *const [T; 0], before: usize) -> Thunks {
    Thunks {
        start: (first as usize).wrapping_sub(before) as u64,
        len: (before + NR_REGS * core::mem::size_of::<T>()) as u64,
    }
}

/// The entry of a return thunk, the only place that a return jumps to.
#[cfg(CONFIG_MITIGATION_RETHUNK)]
fn return_thunk(thunk: unsafe extern "C" fn()) -> Thunks {
    Thunks {
        start: thunk as usize as u64,
        len: 1,
    }
}

/// Offset of `p` in the template that starts at `start` and is `len` bytes long.
fn offset_in(p: *const c_void, start: usize, len: usize) -> Result<usize> {
    (p as usize)
        .checked_sub(start)
        .filter(|&off| off < len)
        .ok_or(EINVAL)
}

fn create(
    cache: *mut bindings::execslot_cache,
    tmpl: &bindings::ftrace_tramp_template,
    ops: *const c_void,
    func: *const c_void,
) -> Result<(usize, usize)> {
    let start = tmpl.start as usize;
    let len = (tmpl.end as usize).checked_sub(start).ok_or(EINVAL)?;
    if len == 0 || len > MAX_TEMPLATE {
        return Err(EINVAL);
    }
    let op_ptr = offset_in(tmpl.op_ptr, start, len)?;
    let call = offset_in(tmpl.call, start, len)?;
    let jnz = if tmpl.jnz.is_null() {
        None
    } else {
        Some(offset_in(tmpl.jnz, start, len)?)
    };

    // The template is live text: ftrace patches its call site while we copy it.
    let mut code = KVec::from_elem(0u8, len, GFP_KERNEL)?;
    let dst = code.as_mut_ptr().cast();
    // SAFETY: `code` has room for `len` bytes; the source is only read, and faults are
    // caught.
    if unsafe { bindings::copy_from_kernel_nofault(dst, tmpl.start, len) } < 0 {
        return Err(EINVAL);
    }
    // The thunks of arch/x86/lib/retpoline.S that this kernel has: retpolines, call-depth
    // tracking, ITS (whose FineIBT-paranoid entries start 2 bytes before each thunk, after
    // a 1-byte UDB) and the return thunks that `x86_return_thunk` may point to.
    let thunks: &[Thunks] = &[
        #[cfg(CONFIG_MITIGATION_RETPOLINE)]
        thunk_array(&raw const bindings::__x86_indirect_thunk_array, 0),
        #[cfg(CONFIG_MITIGATION_CALL_DEPTH_TRACKING)]
        thunk_array(&raw const bindings::__x86_indirect_call_thunk_array, 0),
        #[cfg(CONFIG_MITIGATION_CALL_DEPTH_TRACKING)]
        thunk_array(&raw const bindings::__x86_indirect_jump_thunk_array, 0),
        #[cfg(CONFIG_MITIGATION_ITS)]
        thunk_array(&raw const bindings::__x86_indirect_its_thunk_array, 3),
        #[cfg(CONFIG_MITIGATION_RETHUNK)]
        return_thunk(bindings::__x86_return_thunk),
        #[cfg(CONFIG_MITIGATION_UNRET_ENTRY)]
        return_thunk(bindings::retbleed_return_thunk),
        #[cfg(CONFIG_MITIGATION_SRSO)]
        return_thunk(bindings::srso_return_thunk),
        #[cfg(CONFIG_MITIGATION_SRSO)]
        return_thunk(bindings::srso_alias_return_thunk),
        #[cfg(CONFIG_MITIGATION_CALL_DEPTH_TRACKING)]
        return_thunk(bindings::call_depth_return_thunk),
        #[cfg(CONFIG_MITIGATION_ITS)]
        return_thunk(bindings::its_return_thunk),
    ];
    let template = Template {
        code: &code,
        addr: start as u64,
        op_ptr,
        call,
        jnz,
        thunks,
    };

    let layout = Layout::new(len);
    let mut out = KVec::from_elem(0u8, layout.size, GFP_KERNEL)?;
    let mut slot = ptr::null_mut();
    // SAFETY: `cache` is valid (the caller's guarantee) and `slot` is a valid out pointer.
    to_result(unsafe { bindings::execslot_alloc_locked(cache, layout.size, &mut slot) })?;
    let at = slot as usize;

    let ret_ip = (at + len) as *const c_void;
    // SAFETY: the function only looks at the address.
    let thunk = unsafe { bindings::x86_ftrace_tramp_return_thunk(ret_ip) };
    let ret = if thunk.is_null() {
        Return::Ret
    } else {
        Return::Thunk(thunk as u64)
    };

    let res = build::build(&template, at as u64, ops as u64, func as u64, ret, &mut out)
        .map_err(|err| {
            report(err);
            EINVAL
        })
        .and_then(|_| {
            // SAFETY: `slot` is a live slot of `layout.size` bytes and `out` holds as many.
            to_result(unsafe {
                bindings::execslot_write_locked(slot, 0, out.as_ptr().cast(), out.len())
            })
        });
    if let Err(err) = res {
        // SAFETY: `slot` is the live slot allocated above; nothing runs it yet.
        unsafe { bindings::execslot_free_locked(slot) };
        return Err(err);
    }
    // Report the slot's size (the allocator rounds up), so that kallsyms, perf ksymbol
    // and ftrace_ops_trampoline() cover the slot exactly.
    let (mut start, mut size, mut name) = (0, layout.size, ptr::null());
    let _rcu = rcu::read_lock();
    // SAFETY: the RCU read lock is held and the outputs are valid; `slot` is live.
    unsafe { bindings::__execslot_lookup(at, &mut start, &mut size, &mut name) };
    Ok((at, size))
}

fn report(err: BuildError) {
    pr_warn_once!("cannot build a trampoline from this template: {:?}\n", err);
}

/// Builds a trampoline in a slot; see `asm/ftrace_tramp.h`.
///
/// # Safety
///
/// The caller holds `text_mutex`; `cache` is a cache defined with `DEFINE_EXECSLOT_CACHE()`;
/// `tmpl` points to a template whose `start..end` range is kernel text; `tramp` and `size`
/// are valid for writes.
#[export]
pub unsafe extern "C" fn x86_ftrace_tramp_create(
    cache: *mut bindings::execslot_cache,
    tmpl: *const bindings::ftrace_tramp_template,
    ops: *const c_void,
    func: *const c_void,
    tramp: *mut c_ulong,
    size: *mut c_uint,
) -> c_int {
    // SAFETY: the caller passes a valid template.
    let tmpl = unsafe { &*tmpl };
    match create(cache, tmpl, ops, func) {
        Ok((addr, len)) => {
            // SAFETY: the caller passes valid `tramp` and `size`; `len` is below a page.
            unsafe {
                *tramp = addr as c_ulong;
                *size = len as c_uint;
            }
            0
        }
        Err(err) => err.to_errno(),
    }
}
