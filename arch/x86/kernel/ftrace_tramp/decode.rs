// SPDX-License-Identifier: GPL-2.0

//! What the trampoline builder needs from an x86 instruction decoder.
//!
//! Pure logic without kernel types: [`super::build`] takes a [`Decoder`] and so does not
//! carry an opcode table of its own. `arch/x86/kernel/ftrace_tramp.rs` implements it with
//! the kernel's decoder (`insn_decode()` in `INSN_MODE_KERN`, what `insn_decode_kernel()`
//! expands to) and `text_poke_apply_relocation()`, which alternatives and mainline's
//! `create_trampoline()` use on the same kind of code; the host tests in `tools/host`
//! implement it with iced-x86, so the same builder code is tested on both.

/// Longest instruction the architecture allows.
pub const MAX_INSN_SIZE: usize = 15;

/// Why an instruction could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does.
    Truncated,
    /// The bytes are not a valid instruction.
    Invalid,
    /// A VEX, EVEX, XOP or REX2 encoded instruction; the byte is the first of its
    /// prefix. `text_poke_apply_relocation()` tells branches by their opcode byte without
    /// looking at the opcode map, so a copy that it relocates may not hold them. Or an
    /// EIP-relative operand (`0x67`), which it would relocate as RIP-relative.
    Unsupported(u8),
}

/// A displacement relative to the end of its instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rel {
    /// Offset of the displacement from the start of the instruction.
    pub offset: usize,
    /// Size of the displacement in bytes: 1, 2 or 4.
    pub size: usize,
}

impl Rel {
    /// Signed value of the displacement in `insn`, the instruction's bytes.
    pub fn value(&self, insn: &[u8]) -> Option<i64> {
        let b = insn.get(self.offset..self.offset.checked_add(self.size)?)?;
        match *b {
            [b0] => Some(i64::from(b0 as i8)),
            [b0, b1] => Some(i64::from(i16::from_le_bytes([b0, b1]))),
            [b0, b1, b2, b3] => Some(i64::from(i32::from_le_bytes([b0, b1, b2, b3]))),
            _ => None,
        }
    }
}

/// What an instruction is, where that matters for a copy to another address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else.
    Other,
    /// A near return: `ret` (`c3`) or `ret $imm16` (`c2`), with any prefixes.
    Ret,
    /// An indirect `call` or `jmp`, near or far (`ff /2` to `ff /5`), with any prefixes.
    Indirect,
    /// A `jcc` (`70`-`7f`, `0f 80`-`0f 8f`), `jmp` rel8 (`eb`) or `call` (`e8`), whose
    /// displacement `text_poke_apply_relocation()` relocates.
    Branch(Rel),
    /// A `jmp` rel32 (`e9`): relocated like [`Kind::Branch`], and then turned into a
    /// `jmp` rel8 and INT3 padding where the displacement fits a byte.
    Jmp32(Rel),
    /// A relative branch that `text_poke_apply_relocation()` leaves alone: `loop`,
    /// `jrcxz`, `xbegin`.
    OtherBranch(Rel),
    /// An instruction with a RIP-relative memory operand (`%gs`-based ones included).
    RipRelative(Rel),
}

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Length in bytes.
    pub len: usize,
    /// What it is.
    pub kind: Kind,
    /// Whether `insn_is_nop()` calls it a NOP: `text_poke_apply_relocation()` rewrites
    /// each run of them as one NOP, or as a jump over INT3 padding.
    pub nop: bool,
}

/// The decoder could not allocate its scratch space.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NoMemory;

/// An x86-64 decoder and relocator, as the kernel has them.
pub trait Decoder {
    /// Decodes the instruction at the start of `code`; bytes after the first
    /// [`MAX_INSN_SIZE`] are not looked at.
    fn decode(&self, code: &[u8]) -> Result<Insn, DecodeError>;

    /// Does to `code`, a copy of the `code.len()` bytes at `from` that will run at `to`,
    /// what `text_poke_apply_relocation(code, to, len, from, len)` does: every relative
    /// branch of [`Kind::Branch`] and [`Kind::Jmp32`] and every RIP-relative operand
    /// whose target lies outside `from..=from + len` (`need_reloc()`) is relocated by
    /// `from - to`; each `jmp` rel32 whose displacement as decoded, plus `from - to`
    /// (truncated to 32 bits) plus 3, fits a byte becomes a `jmp` rel8 with that
    /// displacement followed by INT3 (whether it was relocated or not); then each run of
    /// NOPs, unless it is a single NOP that ends the range, becomes one NOP (up to 11
    /// bytes) or a jump over INT3 padding. Every instruction that is not in a run of NOPs
    /// keeps its offset.
    ///
    /// The caller has checked that `code` decodes into whole instructions and that every
    /// relocated displacement fits, which the kernel checks with BUG_ON() or not at all.
    fn relocate(&self, code: &mut [u8], from: u64, to: u64) -> Result<(), NoMemory>;
}
