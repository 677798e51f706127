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
//!
//! The builder decodes and relocates through [`decode::Decoder`], which `KernelDecoder`
//! implements with the kernel's own x86 decoder (`insn_decode()`, `insn_rip_relative()`,
//! `insn_is_nop()`) and `text_poke_apply_relocation()`, as alternatives and mainline's
//! `create_trampoline()` relocate code.

// The crate root resolves modules next to itself, not in `ftrace_tramp/`.
#[path = "ftrace_tramp/build.rs"]
pub mod build;
#[path = "ftrace_tramp/decode.rs"]
pub mod decode;

use core::ptr;

use kernel::alloc::flags::GFP_KERNEL;
use kernel::alloc::KVec;
use kernel::bindings;
use kernel::error::code::EINVAL;
use kernel::error::code::ENODATA;
use kernel::error::code::ENOMEM;
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
use decode::DecodeError;
use decode::Decoder;
use decode::Insn;
use decode::Kind;
use decode::NoMemory;
use decode::Rel;
use decode::MAX_INSN_SIZE;

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

const _: () = assert!(bindings::MAX_INSN_SIZE as usize == MAX_INSN_SIZE);

/// The kernel's x86 decoder and `text_poke_apply_relocation()`.
struct KernelDecoder;

/// The bytes of a field of a decoded `struct insn`.
fn field(f: &bindings::insn_field) -> [u8; 4] {
    // SAFETY: both members of the union are 4 bytes of plain data (`insn_value_t` is an
    // `int`, `bytes` a `u8[4]`), so any value is a valid `[u8; 4]`.
    unsafe { f.__bindgen_anon_1.bytes }
}

impl Decoder for KernelDecoder {
    fn decode(&self, code: &[u8]) -> Result<Insn, DecodeError> {
        let len = code.len().min(MAX_INSN_SIZE);
        let mut insn = bindings::insn::default();
        // SAFETY: `insn` is valid for writes, and `code` for reads of `len` bytes, the
        // most that `insn_decode()` reads from it, and it only reads from it; this is
        // `insn_decode_kernel()` with that length.
        let ret = unsafe {
            bindings::insn_decode(
                &mut insn,
                code.as_ptr().cast(),
                len as c_int,
                bindings::insn_mode_INSN_MODE_KERN,
            )
        };
        if ret == ENODATA.to_errno() {
            return Err(DecodeError::Truncated);
        } else if ret != 0 {
            return Err(DecodeError::Invalid);
        }
        // SAFETY: all members of the union are a `struct insn_field`.
        let (vex, imm) = unsafe {
            (
                insn.__bindgen_anon_1.vex_prefix,
                insn.__bindgen_anon_2.immediate,
            )
        };
        let at = |off: u8| code.get(usize::from(off)).copied().unwrap_or(0);
        // The offsets of the fields, as `insn_offset_*()` compute them; an emulate prefix
        // would come first, and REX2 and VEX are refused (see `DecodeError::Unsupported`).
        let opcode_at = insn.prefixes.nbytes + insn.rex_prefix.nbytes;
        if insn.emulate_prefix_size != 0 {
            return Err(DecodeError::Unsupported(at(0)));
        }
        if vex.nbytes != 0 || insn.rex_prefix.nbytes > 1 {
            return Err(DecodeError::Unsupported(at(insn.prefixes.nbytes)));
        }
        // SAFETY: `insn` is a valid `struct insn` that `insn_decode()` completed from
        // `code`, which is still borrowed; the function only reads its fields, as the
        // `got` flags keep it from decoding again.
        let rip = unsafe { bindings::insn_rip_relative(&mut insn) } != 0;
        if rip && insn.addr_bytes != 8 {
            return Err(DecodeError::Unsupported(0x67));
        }
        let disp_at = opcode_at + insn.opcode.nbytes + insn.modrm.nbytes + insn.sib.nbytes;
        let imm = Rel {
            offset: usize::from(disp_at + insn.displacement.nbytes),
            size: usize::from(imm.nbytes),
        };
        let op = field(&insn.opcode);
        let one_byte = insn.opcode.nbytes == 1;
        let reg = (field(&insn.modrm)[0] >> 3) & 7;
        // `__apply_relocation()` tells the branches that it relocates by `op[0]` (and
        // `op[1]` after 0f) alone.
        let kind = match op {
            [0xc2 | 0xc3, ..] if one_byte => Kind::Ret,
            [0xff, ..] if one_byte && insn.modrm.nbytes != 0 && (2..=5).contains(&reg) => {
                Kind::Indirect
            }
            [0x70..=0x7f | 0xe8 | 0xeb, ..] | [0x0f, 0x80..=0x8f, ..] => Kind::Branch(imm),
            [0xe9, ..] => Kind::Jmp32(imm),
            // loop, loope, loopne, jrcxz; xbegin.
            [0xe0..=0xe3, ..] if one_byte => Kind::OtherBranch(imm),
            [0xc7, ..] if one_byte && field(&insn.modrm)[0] == 0xf8 => Kind::OtherBranch(imm),
            _ if rip => Kind::RipRelative(Rel {
                offset: usize::from(disp_at),
                size: usize::from(insn.displacement.nbytes),
            }),
            _ => Kind::Other,
        };
        // SAFETY: `insn` is the valid, completed `struct insn` of `insn_rip_relative()`
        // above; `insn_is_nop()` reads its fields and touches nothing else.
        let nop = unsafe { bindings::insn_is_nop(&mut insn) };
        Ok(Insn {
            len: usize::from(insn.length),
            kind,
            nop,
        })
    }

    fn relocate(&self, code: &mut [u8], from: u64, to: u64) -> Result<(), NoMemory> {
        let len = code.len();
        // text_poke_apply_relocation() decodes with insn_decode_kernel(), which may read
        // MAX_INSN_SIZE bytes from any instruction start: a copy with room for that.
        let mut buf =
            KVec::from_elem(0xccu8, len + MAX_INSN_SIZE, GFP_KERNEL).map_err(|_| NoMemory)?;
        buf[..len].copy_from_slice(code);
        // SAFETY: `buf` is valid for reads and writes of `len + MAX_INSN_SIZE` bytes: the
        // function decodes from offsets below `len` and writes below `len`. `to` (`instr`)
        // and `from` (`repl`) are only used as addresses, never read or written.
        unsafe {
            bindings::text_poke_apply_relocation(
                buf.as_mut_ptr(),
                to as usize as *const u8,
                len,
                from as usize as *mut u8,
                len,
            )
        };
        code.copy_from_slice(&buf[..len]);
        Ok(())
    }
}

/// Offset of `p` in the template that starts at `start` and is `len` bytes long.
fn offset_in(p: *const c_void, start: usize, len: usize) -> Result<usize> {
    (p as usize)
        .checked_sub(start)
        .filter(|&off| off < len)
        .ok_or(EINVAL)
}

/// Builds a trampoline from `tmpl` for `ops` and `func` in a new slot of `cache`: its
/// address and size.
///
/// # Safety
///
/// The caller holds `text_mutex`; `cache` is a cache defined with `DEFINE_EXECSLOT_CACHE()`;
/// `tmpl.start..tmpl.end` is kernel text.
unsafe fn create(
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

    let res = build::build(
        &KernelDecoder,
        &template,
        at as u64,
        ops as u64,
        func as u64,
        ret,
        &mut out,
    )
    .map_err(|err| match err {
        BuildError::NoMemory => ENOMEM,
        err => {
            report(err);
            EINVAL
        }
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
    let (mut start, mut size, mut owner) = (0, layout.size, ptr::null());
    let _rcu = rcu::read_lock();
    // SAFETY: the RCU read lock is held and the outputs are valid; `slot` is live.
    unsafe { bindings::__execslot_lookup(at, &mut start, &mut size, &mut owner) };
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
    // SAFETY: the caller holds `text_mutex` and passes a cache and a template of kernel
    // text.
    match unsafe { create(cache, tmpl, ops, func) } {
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
