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
//! The copy is decoded and relocated through a [`Decoder`]: in the kernel the kernel's own
//! decoder and `text_poke_apply_relocation()`, in the host tests iced-x86 and a model of
//! the latter. Before the copy is relocated:
//! - the 5-byte call at [`Template::call`] becomes `call .+5` and the
//!   `movq function_trace_op(%rip), %rdx` at [`Template::op_ptr`] becomes
//!   `movq 0(%rip), %rdx`: both now point inside the template, so the relocation leaves
//!   them alone, and they are pointed at the ops' function and at the ops pointer stored at
//!   `ops_offset` afterwards. The bytes of the call site are never read: they call the
//!   template's own tracer, of no use to the trampoline, and may be a text_poke's INT3;
//! - the 2-byte `jnz` at [`Template::jnz`] (the direct-call test of `ftrace_regs_caller`),
//!   if any, becomes a 2-byte NOP: a created trampoline serves one ops and no direct call.
//!
//! Then the whole copy is handed to [`Decoder::relocate()`], as mainline's
//! `create_trampoline()` hands it to `text_poke_apply_relocation()`: every relative
//! `jmp`/`jcc`/`call` and RIP-relative operand whose target lies outside the template is
//! rewritten to reach the same absolute target from the new address; targets inside the
//! template stay relative, so they land in the copy. Inside means what `need_reloc()`
//! decides: from the template's first byte up to and including its end, so a branch to
//! the end reaches the trampoline's own return, which sits at that offset. `%gs`-based
//! RIP-relative operands (the call-depth accounting that alternatives patch in with
//! `retbleed=stuff`) are relocated like the others, which keeps their per-CPU offset.
//!
//! `text_poke_apply_relocation()` also turns a `jmp` rel32 whose result fits a byte into a
//! `jmp` rel8 padded with INT3, and rewrites each run of NOPs as one NOP or as a jump over
//! INT3 padding. Both keep every other instruction at its offset, and the jump at the
//! offset of the instruction it replaces, so the ORC unwinder, which maps an address in a
//! trampoline to the same offset in the template, finds the same frame. The builder checks
//! before, with [`Decoder::decode()`], that the relocation cannot go wrong, as the kernel
//! checks only with BUG_ON() or not at all: every relocated displacement must still fit
//! ([`BuildError::OutOfReach`]; a displacement is never widened), and the copy may hold no
//! `loop`, `jrcxz` or `xbegin` that leaves the template, which the relocation leaves alone,
//! no `jmp` rel32 inside the template that it would shorten to the wrong target (its
//! shortening adds the move distance even to unrelocated jumps), and no branch into the
//! middle of a run of NOPs ([`BuildError::NotRelocatable`]).
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

use super::decode::DecodeError;
use super::decode::Decoder;
use super::decode::Insn;
use super::decode::Kind;
use super::decode::Rel;
use super::decode::MAX_INSN_SIZE;

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
    /// `text_poke_apply_relocation()` would get the instruction wrong: a `loop`, `jrcxz`
    /// or `xbegin` that leaves the template, a `jmp` rel32 inside the template that it
    /// would shorten to the wrong target, or a branch into the middle of a run of NOPs
    /// that it rewrites.
    NotRelocatable {
        /// Offset of the instruction in the template.
        offset: usize,
    },
    /// The decoder could not allocate its scratch space.
    NoMemory,
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

/// Longest template the builder takes, in bytes: a trampoline fits in a page.
pub const MAX_CODE: usize = 4096;

/// One bit per byte of a template.
struct Bitmap([u64; MAX_CODE / 64]);

impl Bitmap {
    fn set(&mut self, b: usize) {
        if let Some(w) = self.0.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    }

    fn get(&self, b: usize) -> bool {
        self.0.get(b / 64).is_some_and(|w| w & (1 << (b % 64)) != 0)
    }
}

/// Decodes `code` with `d` one instruction after the other and calls `f` with the offset
/// and the instruction of each.
fn walk(
    d: &impl Decoder,
    code: &[u8],
    mut f: impl FnMut(usize, &Insn) -> Result<(), BuildError>,
) -> Result<(), BuildError> {
    let len = code.len();
    let mut off = 0;
    while off < len {
        let end = len.min(off + MAX_INSN_SIZE);
        let insn = d.decode(&code[off..end]).map_err(|err| match err {
            DecodeError::Truncated if end == len => BuildError::Straddles { offset: off },
            err => BuildError::Decode { offset: off, err },
        })?;
        if insn.len == 0 || insn.len > end - off {
            return Err(BuildError::Straddles { offset: off });
        }
        f(off, &insn)?;
        off += insn.len;
    }
    Ok(())
}

/// Builds into `out` (exactly [`Layout::size`] bytes) the trampoline to run at `at`, whose
/// op_ptr load reads `ops` and whose call goes to `func`; `d` decodes and relocates.
pub fn build(
    d: &impl Decoder,
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
        || len > MAX_CODE
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
    // Both point inside the template now, so the relocation leaves them alone.
    code[t.call..t.call + CALL_SIZE].copy_from_slice(&[CALL, 0, 0, 0, 0]);
    code[t.op_ptr + 3..t.op_ptr + OP_PTR_SIZE].fill(0);
    if let Some(j) = t.jnz {
        if code[j] != JNZ8 {
            return Err(BuildError::NotJnz);
        }
        code[j..j + 2].copy_from_slice(&NOP2);
    }

    // Every byte but the first of each run of two or more NOPs, which the relocation
    // rewrites as one instruction.
    let mut in_run = Bitmap([0; MAX_CODE / 64]);
    // The run being walked: its first byte and how many NOPs it has.
    let mut run = (0, 0);
    let mut seen = [false; 3];
    walk(d, code, |off, insn| {
        for (s, want) in seen.iter_mut().zip([Some(t.op_ptr), Some(t.call), t.jnz]) {
            *s |= want.is_none() || want == Some(off);
        }
        // The op_ptr load and the call are rewritten below; the jnz is now a NOP.
        if off != t.op_ptr && off != t.call {
            check_movable(t, code, off, insn)?;
            check_relocation(code, off, insn, t.addr, at)?;
        }
        run = match (insn.nop, run) {
            (false, _) => (0, 0),
            (true, (_, 0)) => (off, 1),
            (true, (first, n)) => (first, n + 1),
        };
        if run.1 > 1 {
            (run.0 + 1..off + insn.len).for_each(|b| in_run.set(b));
        }
        Ok(())
    })?;
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
    // A branch into a run of NOPs would land in the middle of the new NOP or in INT3.
    walk(d, code, |off, insn| match target(code, off, insn, t.addr) {
        Some((Target::Branch, to)) if in_run.get(to.wrapping_sub(t.addr) as usize) => {
            Err(BuildError::NotRelocatable { offset: off })
        }
        _ => Ok(()),
    })?;

    d.relocate(code, t.addr, at)
        .map_err(|_| BuildError::NoMemory)?;

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

/// What a relative displacement addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Code: the target of a relative branch.
    Branch,
    /// Data: a RIP-relative memory operand.
    Data,
}

/// The displacement of `insn` relative to the next instruction, if it has one.
fn rel_of(insn: &Insn) -> Option<(Target, Rel)> {
    match insn.kind {
        Kind::Branch(rel) | Kind::Jmp32(rel) | Kind::OtherBranch(rel) => {
            Some((Target::Branch, rel))
        }
        Kind::RipRelative(rel) => Some((Target::Data, rel)),
        Kind::Other | Kind::Ret | Kind::Indirect => None,
    }
}

/// The absolute address that the relative displacement of `insn` at `off` in `code`, read
/// from `from`, refers to, if it has one.
fn target(code: &[u8], off: usize, insn: &Insn, from: u64) -> Option<(Target, u64)> {
    let (what, rel) = rel_of(insn)?;
    let disp = rel.value(code.get(off..off + insn.len)?)?;
    let next = (off + insn.len) as u64;
    Some((what, from.wrapping_add(next).wrapping_add(disp as u64)))
}

/// Whether `target` lies outside a template of `len` bytes at `from`, as `need_reloc()`
/// decides: `target < src || target > src + src_len`. The template's end is inside.
fn outside(from: u64, len: usize, target: u64) -> bool {
    target.wrapping_sub(from) > len as u64
}

/// Refuses `insn` at `off` in `code` if it returns, branches indirectly or branches to a
/// thunk.
fn check_movable(t: &Template<'_>, code: &[u8], off: usize, insn: &Insn) -> Result<(), BuildError> {
    let what = match insn.kind {
        Kind::Ret => Unmovable::Ret,
        Kind::Indirect => Unmovable::Indirect,
        _ => match target(code, off, insn, t.addr) {
            Some((Target::Branch, to))
                if outside(t.addr, code.len(), to) && t.thunks.iter().any(|r| r.contains(to)) =>
            {
                Unmovable::Thunk
            }
            _ => return Ok(()),
        },
    };
    Err(BuildError::Unmovable { offset: off, what })
}

/// Checks that [`Decoder::relocate()`] on `code`, copied from `from`, to run at `to`, does
/// to `insn` at `off` what it must: keep its target if that lies outside the template,
/// keep its offset in the copy if not. A relocated displacement that no longer fits
/// would BUG() (rel8) or wrap around (rel32) in `text_poke_apply_relocation()`.
fn check_relocation(
    code: &[u8],
    off: usize,
    insn: &Insn,
    from: u64,
    to: u64,
) -> Result<(), BuildError> {
    let (Some((_, rel)), Some((_, dest))) = (rel_of(insn), target(code, off, insn, from)) else {
        return Ok(());
    };
    let bad = BuildError::NotRelocatable { offset: off };
    let next = (off + insn.len) as u64;
    if outside(from, code.len(), dest) {
        if matches!(insn.kind, Kind::OtherBranch(_)) {
            return Err(bad);
        }
        let moved = i128::from(dest) - i128::from(to.wrapping_add(next));
        let half = 1i128 << (8 * rel.size - 1);
        if !(-half..half).contains(&moved) {
            return Err(BuildError::OutOfReach { offset: off });
        }
    } else if matches!(insn.kind, Kind::Jmp32(_)) {
        // The shortening adds `from - to`, truncated to 32 bits, whether the jump was
        // relocated or not: one that stays inside must not be shortened unless that adds
        // nothing.
        let delta = from.wrapping_sub(to) as i32;
        let disp = rel.value(&code[off..off + insn.len]).unwrap_or(0) as i32;
        let short = disp.wrapping_add(delta).wrapping_add(3);
        if delta != 0 && i8::try_from(short).is_ok() {
            return Err(bad);
        }
    }
    Ok(())
}
