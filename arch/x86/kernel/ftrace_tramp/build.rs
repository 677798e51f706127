// SPDX-License-Identifier: GPL-2.0

//! Builds an ftrace trampoline from a copy of `ftrace_caller` or `ftrace_regs_caller`.
//!
//! Pure logic without kernel types, so that the very same file also builds as a host
//! crate for tests. The input is the template's bytes, the address they were read from, the
//! offsets of the instructions that change, and the address the trampoline will live at;
//! the output is the trampoline's bytes, laid out as:
//!
//! ```text
//!   0            code_len       code_len + RET_AREA     ops_offset       size
//!   | template copy | ret; int3... or jmp thunk | int3 padding | ops pointer |
//! ```
//!
//! The copy keeps every instruction at its template offset (the ORC unwinder maps an
//! address in a trampoline to the same offset in the template), so nothing may change
//! length: a displacement that no longer fits is an error, never a longer encoding.
//!
//! In the copy:
//! - every RIP-relative operand and relative branch whose target lies outside the template
//!   is rewritten to reach the same absolute target from the new address; targets inside
//!   the template stay relative, so they land in the copy. Inside means exactly what
//!   `need_reloc()` in `arch/x86/kernel/alternative.c` decides for `create_trampoline()`:
//!   from the template's first byte up to and including its end, so a branch to the end
//!   reaches the trampoline's own return, which sits at that offset. `%gs`-based
//!   RIP-relative operands (the call-depth accounting) are relocated like the others,
//!   which keeps their per-CPU offset. Unlike `__apply_relocation()`, `loop` and `jrcxz`
//!   are relocated too, and a rel8 that no longer reaches is an error, not a BUG();
//! - the `movq function_trace_op(%rip), %rdx` at [`Template::op_ptr`] loads the ops pointer
//!   stored at `ops_offset` instead;
//! - the call at [`Template::call`] calls the ops' function directly;
//! - the 2-byte `jnz` at [`Template::jnz`] (the direct-call test of `ftrace_regs_caller`),
//!   if any, becomes a 2-byte NOP: a created trampoline serves one ops and no direct call.
//!
//! The copy may neither return nor branch indirectly. With Indirect Target Selection (ITS),
//! whether a `ret` or an indirect branch is safe depends on the half of its 64-byte cache
//! line it lies in (`cpu_wants_rethunk_at()` tests `addr & 0x20`), and alternatives chose
//! the form of every such site in the template for the template's address: `ret` or a jump
//! to the return thunk, an inline indirect branch or a call of a thunk. A trampoline starts
//! at any 16-byte granule, so its bytes lie in other halves than the template's. A template
//! whose copied range holds a near return (`ret`, `ret $imm16`), an indirect `call` or
//! `jmp` (`ff /2` to `ff /5`, whatever the prefixes) or a relative branch to one of
//! [`Template::thunks`] is refused with [`BuildError::Unmovable`]. Only the return that the
//! builder appends, chosen by the caller for its own address, returns.
//!
//! The bytes of the call site are replaced before the copy is decoded and never read: they
//! call the template's own tracer, of no use to the trampoline.

use super::insn;
use super::insn::DecodeError;
use super::insn::Kind;
use super::insn::RelKind;

/// Bytes reserved after the code for the return: `jmp <return thunk>` or `ret; int3`.
pub const RET_AREA: usize = 5;

/// `movq disp32(%rip), %rdx`.
pub const OP_PTR_INSN: [u8; 3] = [0x48, 0x8b, 0x15];

/// Length of the `movq disp32(%rip), %rdx` at [`Template::op_ptr`].
pub const OP_PTR_SIZE: usize = 7;

const CALL: u8 = 0xe8;
const JMP32: u8 = 0xe9;
const JNZ8: u8 = 0x75;
const RET: u8 = 0xc3;
const INT3: u8 = 0xcc;
const NOP2: [u8; 2] = [0x66, 0x90];
const CALL_SIZE: usize = 5;

/// The template a trampoline is copied from.
#[derive(Debug, Clone, Copy)]
pub struct Template<'a> {
    /// The template's code, from its first byte up to (not including) its final return.
    pub code: &'a [u8],
    /// The address `code` was read from.
    pub addr: u64,
    /// Offset of the `movq function_trace_op(%rip), %rdx`.
    pub op_ptr: usize,
    /// Offset of the 5-byte call of the tracer function.
    pub call: usize,
    /// Offset of a 2-byte `jnz` to turn into a NOP, if any.
    pub jnz: Option<usize>,
    /// The kernel's retpoline, call-depth, ITS and return thunks: the copied range may not
    /// branch to them.
    pub thunks: &'a [Thunks],
}

/// `len` bytes of code from `start` that the copied range may not branch to. A start and
/// a length rather than a range: the kernel names the start of each thunk array, and an
/// end address would be a reference into the middle of code, which objtool refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Thunks {
    /// First byte.
    pub start: u64,
    /// Bytes.
    pub len: u64,
}

impl Thunks {
    /// Whether `addr` lies in the thunks.
    pub fn contains(&self, addr: u64) -> bool {
        addr.wrapping_sub(self.start) < self.len
    }
}

/// How the trampoline returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Return {
    /// `ret; int3`.
    Ret,
    /// `jmp` to the return thunk at this address.
    Thunk(u64),
}

/// Where the parts of a trampoline lie, in bytes from its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Length of the template copy; the return follows it.
    pub code_len: usize,
    /// Offset of the stored ops pointer: 8-byte aligned relative to the start.
    pub ops_offset: usize,
    /// Total size to allocate.
    pub size: usize,
}

impl Layout {
    /// The layout of a trampoline made from a template of `code_len` bytes.
    pub const fn new(code_len: usize) -> Self {
        let ops_offset = (code_len + RET_AREA + 7) & !7;
        Layout {
            code_len,
            ops_offset,
            size: ops_offset + 8,
        }
    }
}

/// Why a trampoline could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuildError {
    /// An offset lies outside the template, the template is empty, or the output buffer
    /// does not have the layout's size.
    BadLayout,
    /// An instruction of the template could not be decoded.
    Decode {
        /// Offset of the instruction in the template.
        offset: usize,
        /// What the decoder refused.
        err: DecodeError,
    },
    /// The last instruction runs past the end of the template.
    Straddles {
        /// Offset of the instruction in the template.
        offset: usize,
    },
    /// An offset the caller named is not the start of an instruction.
    NotInsnStart {
        /// The offset.
        offset: usize,
    },
    /// The bytes at `op_ptr` are not `movq disp32(%rip), %rdx`.
    NotOpPtrLoad,
    /// The bytes at `call` are not a call (or a text_poke's INT3 over one).
    NotCall,
    /// The byte at `jnz` is not a 2-byte `jnz`.
    NotJnz,
    /// A displacement no longer reaches its target from the new address.
    OutOfReach {
        /// Offset of the instruction in the template.
        offset: usize,
    },
    /// The copied range holds an instruction whose form depends on its place in a cache
    /// line, so it cannot move to the trampoline.
    Unmovable {
        /// Offset of the instruction in the template.
        offset: usize,
        /// What it is.
        what: Unmovable,
    },
}

/// What the copied range of a template may not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmovable {
    /// A near return: `ret` or `ret $imm16`.
    Ret,
    /// An indirect `call` or `jmp`.
    Indirect,
    /// A relative `call`, `jmp` or `jcc` to one of [`Template::thunks`].
    Thunk,
}

fn rel32(from_next: u64, target: u64) -> Option<[u8; 4]> {
    let disp = i128::from(target) - i128::from(from_next);
    i32::try_from(disp).ok().map(i32::to_le_bytes)
}

/// Builds into `out` (exactly [`Layout::size`] bytes) the trampoline to run at `at`, whose
/// op_ptr load reads `ops` and whose call goes to `func`.
pub fn build(
    t: &Template<'_>,
    at: u64,
    ops: u64,
    func: u64,
    ret: Return,
    out: &mut [u8],
) -> Result<Layout, BuildError> {
    let len = t.code.len();
    let layout = Layout::new(len);
    let fits = |off: usize, n: usize| off.checked_add(n).is_some_and(|end| end <= len);
    if len == 0
        || out.len() != layout.size
        || !fits(t.op_ptr, OP_PTR_SIZE)
        || !fits(t.call, CALL_SIZE)
        || t.jnz.is_some_and(|j| !fits(j, 2))
    {
        return Err(BuildError::BadLayout);
    }
    if t.code[t.op_ptr..t.op_ptr + 3] != OP_PTR_INSN {
        return Err(BuildError::NotOpPtrLoad);
    }
    if t.code[t.call] != CALL && t.code[t.call] != INT3 {
        return Err(BuildError::NotCall);
    }

    let code = &mut out[..len];
    code.copy_from_slice(t.code);
    code[t.call..t.call + CALL_SIZE].copy_from_slice(&[CALL, 0, 0, 0, 0]);
    if let Some(j) = t.jnz {
        if code[j] != JNZ8 {
            return Err(BuildError::NotJnz);
        }
        code[j..j + 2].copy_from_slice(&NOP2);
    }

    let mut seen = [false; 3];
    let mut off = 0;
    while off < len {
        let insn = insn::decode(&code[off..]).map_err(|err| match err {
            DecodeError::Truncated if len - off < insn::MAX_INSN_SIZE => {
                BuildError::Straddles { offset: off }
            }
            err => BuildError::Decode { offset: off, err },
        })?;
        for (s, want) in seen.iter_mut().zip([Some(t.op_ptr), Some(t.call), t.jnz]) {
            *s |= want.is_none() || want == Some(off);
        }
        // The op_ptr load and the call are rewritten below; the jnz is now a NOP.
        if off != t.op_ptr && off != t.call {
            check_movable(t, code, off, &insn)?;
            relocate(code, off, &insn, t.addr, at)?;
        }
        off += insn.len;
    }
    if !seen[0] {
        return Err(BuildError::NotInsnStart { offset: t.op_ptr });
    }
    if !seen[1] {
        return Err(BuildError::NotInsnStart { offset: t.call });
    }
    if !seen[2] {
        return Err(BuildError::NotInsnStart {
            offset: t.jnz.unwrap_or(0),
        });
    }

    // movq ops_offset(%rip), %rdx: the distance does not depend on `at`.
    let disp = (layout.ops_offset - (t.op_ptr + OP_PTR_SIZE)) as u32;
    code[t.op_ptr + 3..t.op_ptr + OP_PTR_SIZE].copy_from_slice(&disp.to_le_bytes());

    let call_next = at.wrapping_add((t.call + CALL_SIZE) as u64);
    let disp = rel32(call_next, func).ok_or(BuildError::OutOfReach { offset: t.call })?;
    code[t.call + 1..t.call + CALL_SIZE].copy_from_slice(&disp);

    let tail = &mut out[len..];
    tail.fill(INT3);
    match ret {
        Return::Ret => tail[0] = RET,
        Return::Thunk(thunk) => {
            let next = at.wrapping_add((len + 5) as u64);
            let disp = rel32(next, thunk).ok_or(BuildError::OutOfReach { offset: len })?;
            tail[0] = JMP32;
            tail[1..5].copy_from_slice(&disp);
        }
    }
    out[layout.ops_offset..].copy_from_slice(&ops.to_le_bytes());
    Ok(layout)
}

/// The absolute address that the relative displacement of the instruction at `off` in
/// `code`, read from `from`, refers to, if it has one.
fn target(code: &[u8], off: usize, insn: &insn::Insn, from: u64) -> Option<(insn::Rel, u64)> {
    let rel = insn.rel?;
    let disp = insn.rel_value(code.get(off..)?)?;
    let next = (off + insn.len) as u64;
    Some((rel, from.wrapping_add(next).wrapping_add(disp as u64)))
}

/// Whether `target` lies outside a template of `len` bytes at `from`, as `need_reloc()`
/// decides: `target < src || target > src + src_len`. The template's end is inside.
fn outside(from: u64, len: usize, target: u64) -> bool {
    target.wrapping_sub(from) > len as u64
}

/// Refuses the instruction at `off` in `code` if it returns, branches indirectly or
/// branches to a thunk.
fn check_movable(
    t: &Template<'_>,
    code: &[u8],
    off: usize,
    insn: &insn::Insn,
) -> Result<(), BuildError> {
    let what = match insn.kind {
        Kind::Ret => Unmovable::Ret,
        Kind::Indirect => Unmovable::Indirect,
        Kind::Other => match target(code, off, insn, t.addr) {
            Some((rel, to))
                if rel.kind == RelKind::Branch
                    && outside(t.addr, code.len(), to)
                    && t.thunks.iter().any(|r| r.contains(to)) =>
            {
                Unmovable::Thunk
            }
            _ => return Ok(()),
        },
    };
    Err(BuildError::Unmovable { offset: off, what })
}

/// Rewrites the relative displacement of the instruction at `off` in `code`, copied from
/// `from`, so that it reaches the same target from `to`, if that target lies outside the
/// template.
fn relocate(
    code: &mut [u8],
    off: usize,
    insn: &insn::Insn,
    from: u64,
    to: u64,
) -> Result<(), BuildError> {
    let Some((rel, target)) = target(code, off, insn, from) else {
        return Ok(());
    };
    if !outside(from, code.len(), target) {
        return Ok(());
    }
    let next = (off + insn.len) as u64;
    let new = i128::from(target) - i128::from(to.wrapping_add(next));
    let at = off + rel.offset;
    let reach = BuildError::OutOfReach { offset: off };
    if rel.size == 1 {
        code[at] = i8::try_from(new).map_err(|_| reach)? as u8;
    } else {
        let new = i32::try_from(new).map_err(|_| reach)?;
        code[at..at + 4].copy_from_slice(&new.to_le_bytes());
    }
    Ok(())
}
