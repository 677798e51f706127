// SPDX-License-Identifier: GPL-2.0

//! Length decoder for the x86-64 instructions that a trampoline template may hold.
//!
//! Pure logic without kernel types, so that the very same file also builds as a host
//! crate for tests against a real disassembler. It finds where each instruction ends and where its
//! displacement sits when that displacement is relative to the next instruction: a
//! RIP-relative memory operand or a relative `jmp`/`call`/`jcc`/`loop`. That is all a
//! relocation needs. It also tells near returns and indirect branches ([`Kind`]), which a
//! copy to another address may not hold.
//!
//! It covers the legacy one-byte and `0f` opcode maps and the `0f 38`/`0f 3a` maps, with
//! legacy prefixes and REX, in 64-bit mode. Anything else (VEX, EVEX, XOP, 3DNow!, the
//! `0f 78`/`0f 79` pair whose length depends on the prefix, `xbegin`, near branches with an
//! operand-size prefix, RIP-relative operands with an address-size prefix, invalid opcodes)
//! is refused with [`DecodeError::Unsupported`]: a caller that relocates code must not guess.

/// Longest instruction the architecture allows.
pub const MAX_INSN_SIZE: usize = 15;

/// Why an instruction could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DecodeError {
    /// The bytes end before the instruction does (or it would exceed [`MAX_INSN_SIZE`]).
    Truncated,
    /// An opcode or encoding this decoder does not handle; the byte is the opcode.
    Unsupported(u8),
}

/// What a relative displacement addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelKind {
    /// A RIP-relative memory operand (`disp32(%rip)`).
    Data,
    /// The target of a relative `jmp`, `call`, `jcc`, `loop` or `jrcxz`.
    Branch,
}

/// A displacement relative to the end of its instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rel {
    /// Offset of the displacement from the start of the instruction.
    pub offset: usize,
    /// Size of the displacement in bytes: 1 or 4.
    pub size: usize,
    /// What the displacement addresses.
    pub kind: RelKind,
}

/// What an instruction does to the flow of control, where that matters for a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Anything else, including the relative branches (see [`Insn::rel`]).
    Other,
    /// A near return: `ret` (`c3`) or `ret $imm16` (`c2`), with any prefixes.
    Ret,
    /// An indirect `call` or `jmp`, near or far (`ff /2` to `ff /5`), with any prefixes.
    Indirect,
}

/// One decoded instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    /// Length in bytes.
    pub len: usize,
    /// The displacement relative to the next instruction, if the instruction has one.
    pub rel: Option<Rel>,
    /// Whether it returns or branches indirectly.
    pub kind: Kind,
}

impl Insn {
    /// Signed value of the relative displacement in `code` (the instruction's bytes).
    pub fn rel_value(&self, code: &[u8]) -> Option<i64> {
        let rel = self.rel?;
        let b = code.get(rel.offset..rel.offset + rel.size)?;
        Some(match rel.size {
            1 => i64::from(b[0] as i8),
            _ => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        })
    }
}

const MODRM: u16 = 1 << 0;
const IMM8: u16 = 1 << 1;
const IMM16: u16 = 1 << 2;
/// A 16- or 32-bit immediate, by operand size.
const IMMZ: u16 = 1 << 3;
/// A 16-, 32- or 64-bit immediate, by operand size (`mov $imm, %reg`).
const IMMV: u16 = 1 << 4;
/// A 32- or 64-bit absolute address, by address size (`mov moffs`).
const MOFFS: u16 = 1 << 5;
const REL8: u16 = 1 << 6;
const REL32: u16 = 1 << 7;
/// `test` in group 3 (`f6`/`f7` with ModRM.reg 0 or 1) has an immediate.
const GRP3: u16 = 1 << 8;
/// ModRM.mod is ignored: the operand is always a register (`mov` to/from CR/DR).
const REGONLY: u16 = 1 << 9;
const BAD: u16 = 1 << 15;

/// Operand encoding of a one-byte opcode (prefixes, REX and `0f` handled by the caller).
const fn one_byte(op: u8) -> u16 {
    match op {
        // ALU ops: r/m forms, then AL/eAX with an immediate; the rest is invalid in
        // 64-bit mode or a prefix.
        0x00..=0x3f => match op & 7 {
            0..=3 => MODRM,
            4 => IMM8,
            5 => IMMZ,
            _ => BAD,
        },
        0x50..=0x5f => 0,
        0x63 => MODRM,
        0x68 => IMMZ,
        0x69 => MODRM | IMMZ,
        0x6a => IMM8,
        0x6b => MODRM | IMM8,
        0x6c..=0x6f => 0,
        0x70..=0x7f => REL8,
        0x80 | 0x83 => MODRM | IMM8,
        0x81 => MODRM | IMMZ,
        0x84..=0x8f => MODRM,
        0x90..=0x99 | 0x9b..=0x9f => 0,
        0xa0..=0xa3 => MOFFS,
        0xa4..=0xa7 | 0xaa..=0xaf => 0,
        0xa8 => IMM8,
        0xa9 => IMMZ,
        0xb0..=0xb7 => IMM8,
        0xb8..=0xbf => IMMV,
        0xc0 | 0xc1 | 0xc6 => MODRM | IMM8,
        0xc2 | 0xca => IMM16,
        0xc3 | 0xc9 | 0xcb | 0xcc | 0xcf => 0,
        0xc7 => MODRM | IMMZ,
        0xc8 => IMM16 | IMM8,
        0xcd => IMM8,
        0xd0..=0xd3 | 0xd8..=0xdf => MODRM,
        0xd7 => 0,
        0xe0..=0xe3 | 0xeb => REL8,
        0xe4..=0xe7 => IMM8,
        0xe8 | 0xe9 => REL32,
        0xec..=0xef | 0xf1 | 0xf4 | 0xf5 | 0xf8..=0xfd => 0,
        0xf6 | 0xf7 => MODRM | GRP3,
        0xfe | 0xff => MODRM,
        // 06 07 0e 16 17 1e 1f 27 2f 37 3f 60-62 82 9a c4 c5 ce d4-d6 ea are invalid in
        // 64-bit mode or VEX/EVEX escapes; 0f, 26 2e 36 3e 40-4f 64-67 f0 f2 f3 are
        // escapes and prefixes that the caller consumed.
        _ => BAD,
    }
}

/// Operand encoding of an opcode in the `0f` map.
const fn two_byte(op: u8) -> u16 {
    match op {
        0x00..=0x03 | 0x0d => MODRM,
        0x05..=0x09 | 0x0b | 0x0e => 0,
        0x10..=0x1f => MODRM,
        0x20..=0x23 => MODRM | REGONLY,
        0x28..=0x2f => MODRM,
        0x30..=0x35 | 0x37 => 0,
        0x40..=0x6f => MODRM,
        0x70..=0x73 => MODRM | IMM8,
        0x74..=0x76 => MODRM,
        0x77 => 0,
        0x7c..=0x7f => MODRM,
        0x80..=0x8f => REL32,
        0x90..=0x9f => MODRM,
        0xa0..=0xa2 | 0xa8..=0xaa => 0,
        0xa3 | 0xa5 | 0xab | 0xad..=0xaf => MODRM,
        0xa4 | 0xac | 0xba => MODRM | IMM8,
        0xb0..=0xb9 | 0xbb..=0xc1 | 0xc3 | 0xc7 => MODRM,
        0xc2 | 0xc4..=0xc6 => MODRM | IMM8,
        0xc8..=0xcf => 0,
        0xd0..=0xff => MODRM,
        // 04 0a 0c 24-27 36 39 3b-3f 7a 7b a6 a7 are invalid; 0f 0f is 3DNow!, 0f 78 and
        // 0f 79 change length with the prefix; 0f 38 and 0f 3a are handled by the caller.
        _ => BAD,
    }
}

fn byte(code: &[u8], i: usize) -> Result<u8, DecodeError> {
    if i >= MAX_INSN_SIZE {
        return Err(DecodeError::Truncated);
    }
    code.get(i).copied().ok_or(DecodeError::Truncated)
}

/// Decodes the instruction at the start of `code`.
pub fn decode(code: &[u8]) -> Result<Insn, DecodeError> {
    let mut i = 0;
    let mut opsize16 = false;
    let mut addr32 = false;
    let mut rex_w = false;

    loop {
        match byte(code, i)? {
            0x66 => opsize16 = true,
            0x67 => addr32 = true,
            0x26 | 0x2e | 0x36 | 0x3e | 0x64 | 0x65 | 0xf0 | 0xf2 | 0xf3 => {}
            _ => break,
        }
        i += 1;
    }
    let b = byte(code, i)?;
    if b & 0xf0 == 0x40 {
        rex_w = b & 0x08 != 0;
        i += 1;
    }

    let mut op = byte(code, i)?;
    i += 1;
    let legacy = op != 0x0f;
    let flags = if legacy {
        one_byte(op)
    } else {
        op = byte(code, i)?;
        i += 1;
        match op {
            // The 0f 38 and 0f 3a maps: every opcode has a ModRM byte, 0f 3a an imm8.
            0x38 | 0x3a => {
                byte(code, i)?;
                i += 1;
                if op == 0x38 {
                    MODRM
                } else {
                    MODRM | IMM8
                }
            }
            _ => two_byte(op),
        }
    };
    if flags & BAD != 0 {
        return Err(DecodeError::Unsupported(op));
    }

    let mut rel = None;
    let mut modrm_reg = 0;
    if flags & MODRM != 0 {
        let modrm = byte(code, i)?;
        i += 1;
        modrm_reg = (modrm >> 3) & 7;
        let md = modrm >> 6;
        let rm = modrm & 7;
        if flags & REGONLY == 0 && md != 3 {
            if rm == 4 {
                let sib = byte(code, i)?;
                i += 1;
                if md == 0 && sib & 7 == 5 {
                    i += 4;
                }
            } else if md == 0 && rm == 5 {
                if addr32 {
                    return Err(DecodeError::Unsupported(op));
                }
                rel = Some(Rel {
                    offset: i,
                    size: 4,
                    kind: RelKind::Data,
                });
                i += 4;
            }
            match md {
                1 => i += 1,
                2 => i += 4,
                _ => {}
            }
        }
        // 8f with ModRM.reg != 0 is AMD's XOP escape; c7 f8 is xbegin (relative).
        if legacy && ((op == 0x8f && modrm_reg != 0) || (op == 0xc7 && modrm == 0xf8)) {
            return Err(DecodeError::Unsupported(op));
        }
    }

    let zsize = if opsize16 && !rex_w { 2 } else { 4 };
    if flags & IMM8 != 0 {
        i += 1;
    }
    if flags & IMM16 != 0 {
        i += 2;
    }
    if flags & IMMZ != 0 {
        i += zsize;
    }
    if flags & GRP3 != 0 && modrm_reg < 2 {
        i += if op == 0xf6 { 1 } else { zsize };
    }
    if flags & IMMV != 0 {
        i += if rex_w {
            8
        } else if opsize16 {
            2
        } else {
            4
        };
    }
    if flags & MOFFS != 0 {
        i += if addr32 { 4 } else { 8 };
    }
    if flags & (REL8 | REL32) != 0 {
        // An operand-size prefix truncates the target on some CPUs and not on others.
        if opsize16 {
            return Err(DecodeError::Unsupported(op));
        }
        let size = if flags & REL8 != 0 { 1 } else { 4 };
        rel = Some(Rel {
            offset: i,
            size,
            kind: RelKind::Branch,
        });
        i += size;
    }

    if i > MAX_INSN_SIZE || i > code.len() {
        return Err(DecodeError::Truncated);
    }
    let kind = match op {
        0xc2 | 0xc3 if legacy => Kind::Ret,
        0xff if legacy && (2..=5).contains(&modrm_reg) => Kind::Indirect,
        _ => Kind::Other,
    };
    Ok(Insn { len: i, rel, kind })
}
