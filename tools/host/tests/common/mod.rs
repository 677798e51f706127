//! The host's [`Decoder`] for the trampoline builder: iced-x86 decodes, and a model of
//! `text_poke_apply_relocation()` (arch/x86/kernel/alternative.c: `__apply_relocation()`,
//! then `optimize_nops()`) relocates, so the builder runs here as in the kernel, where
//! arch/x86/kernel/ftrace_tramp.rs implements the trait with the kernel's own decoder and
//! `text_poke_apply_relocation()` itself.

use execslot_host::decode::{DecodeError, Decoder, Insn, Kind, NoMemory, Rel, MAX_INSN_SIZE};
use iced_x86::{
    Code, Decoder as IcedX86, DecoderError, DecoderOptions, EncodingKind, FlowControl, Instruction,
    Mnemonic, OpKind, Register,
};

/// iced-x86 and a model of `text_poke_apply_relocation()`.
pub struct Iced;

/// [`Kind::Ret`] or [`Kind::Indirect`] if iced-x86 says `i` is a near return or an indirect
/// branch or call, the instructions the builder refuses inside the copied range.
pub fn ret_or_indirect(i: &iced_x86::Instruction) -> Option<Kind> {
    if i.mnemonic() == Mnemonic::Ret {
        Some(Kind::Ret)
    } else if matches!(
        i.flow_control(),
        FlowControl::IndirectBranch | FlowControl::IndirectCall
    ) {
        Some(Kind::Indirect)
    } else {
        None
    }
}

/// The kernel's NOPs of each length up to 11 (`x86_nops[]`, BYTES_NOP1 to BYTES_NOP11).
const NOPS: [&[u8]; 12] = [
    &[],
    &[0x90],
    &[0x66, 0x90],
    &[0x0f, 0x1f, 0x00],
    &[0x0f, 0x1f, 0x40, 0x00],
    &[0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00],
    &[0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00],
    &[0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00],
    &[
        0x66, 0x66, 0x2e, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00,
    ],
];

const LEGACY_PREFIXES: [u8; 11] = [
    0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
];

/// The one instruction at the start of `code` (at most [`MAX_INSN_SIZE`] bytes of it).
fn iced_decode(code: &[u8]) -> Result<Instruction, DecodeError> {
    let code = &code[..code.len().min(MAX_INSN_SIZE)];
    let mut d = IcedX86::with_ip(64, code, 0, DecoderOptions::NONE);
    let i = d.decode();
    if i.is_invalid() {
        return Err(match d.last_error() {
            DecoderError::NoMoreBytes => DecodeError::Truncated,
            _ => DecodeError::Invalid,
        });
    }
    if i.encoding() != EncodingKind::Legacy {
        let p = code
            .iter()
            .take_while(|b| LEGACY_PREFIXES.contains(b))
            .count();
        return Err(DecodeError::Unsupported(code[p]));
    }
    // EIP-relative: `text_poke_apply_relocation()` would relocate it as RIP-relative.
    if i.memory_base() == Register::EIP {
        return Err(DecodeError::Unsupported(0x67));
    }
    Ok(i)
}

/// `insn_is_nop()` of arch/x86/lib/insn-eval.c: `nop` (not `pause`, not `xchg` with
/// r8), `nopl`, `mov %reg,%reg` and `lea 0(%reg),%reg` of the native size, `jmp .+0`.
fn is_nop(i: &Instruction, code: &[u8]) -> bool {
    match i.code() {
        Code::Nopw | Code::Nopd | Code::Nopq => true,
        // 0f 1f /0: ModRM.reg, extended by REX.R, is 0.
        Code::Nop_rm16 | Code::Nop_rm32 | Code::Nop_rm64 => {
            let p = code
                .iter()
                .take_while(|b| LEGACY_PREFIXES.contains(b))
                .count();
            let rex = usize::from(code[p] & 0xf0 == 0x40);
            let rex_r = rex != 0 && code[p] & 4 != 0;
            !rex_r && (code[p + rex + 2] >> 3) & 7 == 0
        }
        Code::Mov_rm64_r64 => {
            i.op0_kind() == OpKind::Register && i.op0_register() == i.op1_register()
        }
        Code::Lea_r64_m => {
            i.memory_base() == i.op0_register()
                && i.memory_index() == Register::None
                && i.memory_displacement64() == 0
                && i.memory_displ_size() != 0
                && code[..i.len()]
                    .iter()
                    .take_while(|b| LEGACY_PREFIXES.contains(b))
                    .all(|&b| b == 0x3e)
        }
        _ => (i.is_jmp_short_or_near()) && i.near_branch_target() == i.next_ip(),
    }
}

impl Decoder for Iced {
    fn decode(&self, code: &[u8]) -> Result<Insn, DecodeError> {
        let i = iced_decode(code)?;
        let mut d = IcedX86::with_ip(64, &code[..i.len()], 0, DecoderOptions::NONE);
        let first = d.decode();
        let c = d.get_constant_offsets(&first);
        let imm = Rel {
            offset: c.immediate_offset(),
            size: c.immediate_size(),
        };
        let kind = if let Some(k) = ret_or_indirect(&i) {
            k
        } else if i.is_jmp_near() {
            Kind::Jmp32(imm)
        } else if i.is_jcc_short_or_near() || i.is_jmp_short() || i.is_call_near() {
            Kind::Branch(imm)
        } else if matches!(
            i.op0_kind(),
            OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
        ) {
            Kind::OtherBranch(imm)
        } else if i.is_ip_rel_memory_operand() {
            Kind::RipRelative(Rel {
                offset: c.displacement_offset(),
                size: c.displacement_size(),
            })
        } else {
            Kind::Other
        };
        Ok(Insn {
            len: i.len(),
            kind,
            nop: is_nop(&i, code),
        })
    }

    fn relocate(&self, code: &mut [u8], from: u64, to: u64) -> Result<(), NoMemory> {
        apply_relocation(self, code, from, to);
        optimize_nops(self, code);
        Ok(())
    }
}

/// `apply_reloc()`: adds `diff` to the `n`-byte displacement at `p`, and panics where the
/// kernel BUG()s: an 8- or 16-bit result out of range.
fn apply_reloc(n: usize, p: &mut [u8], diff: u64) {
    let v = Rel { offset: 0, size: n }
        .value(p)
        .expect("displacement size") as i32;
    let v = v.wrapping_add(diff as i32);
    match n {
        1 => p[0] = i8::try_from(v).expect("BUG_ON in apply_reloc_n(8)") as u8,
        2 => {
            let v = i16::try_from(v).expect("BUG_ON in apply_reloc_n(16)");
            p[..2].copy_from_slice(&v.to_le_bytes());
        }
        _ => p[..4].copy_from_slice(&v.to_le_bytes()),
    }
}

/// `__apply_relocation(buf, instr, len, repl, len)` with `buf` = `code`, `repl` = `from`
/// and `instr` = `to`.
fn apply_relocation(d: &Iced, code: &mut [u8], from: u64, to: u64) {
    let len = code.len();
    let diff = from.wrapping_sub(to);
    // need_reloc(): the target, as an offset from `repl`, is before it or past its end.
    let need_reloc = |target: i64| target < 0 || target > len as i64;
    let mut i = 0;
    while i < len {
        let Ok(insn) = d.decode(&code[i..]) else {
            panic!("WARN_ON_ONCE in __apply_relocation() at +{i:#x}");
        };
        let next = i + insn.len;
        let bytes = code[i..next].to_vec();
        match insn.kind {
            Kind::Branch(rel) | Kind::Jmp32(rel) => {
                let imm = rel.value(&bytes).expect("immediate");
                if need_reloc(next as i64 + imm) {
                    apply_reloc(rel.size, &mut code[i + rel.offset..], diff);
                }
                // Where possible, convert JMP.d32 into JMP.d8.
                if matches!(insn.kind, Kind::Jmp32(_)) {
                    let imm = (imm as i32).wrapping_add(diff as i32).wrapping_add(3);
                    if let Ok(imm) = i8::try_from(imm) {
                        code[i] = 0xeb;
                        code[i + 1] = imm as u8;
                        code[i + 2..next].fill(0xcc);
                    }
                }
            }
            Kind::RipRelative(rel) => {
                let disp = rel.value(&bytes).expect("displacement");
                if need_reloc(next as i64 + disp) {
                    apply_reloc(rel.size, &mut code[i + rel.offset..], diff);
                }
            }
            _ => {}
        }
        i = next;
    }
}

/// `add_nop()`: one NOP, or a jump over INT3 padding.
fn add_nop(buf: &mut [u8]) {
    let len = buf.len();
    if len < NOPS.len() {
        buf.copy_from_slice(NOPS[len]);
    } else if len < 128 {
        buf[0] = 0xeb;
        buf[1] = (len - 2) as u8;
        buf[2..].fill(0xcc);
    } else {
        buf[0] = 0xe9;
        buf[1..5].copy_from_slice(&((len - 5) as u32).to_le_bytes());
        buf[5..].fill(0xcc);
    }
}

/// `optimize_nops()`: each run of NOPs becomes one NOP, unless it is a single NOP at the end.
fn optimize_nops(d: &Iced, code: &mut [u8]) {
    let len = code.len();
    let mut i = 0;
    while i < len {
        let Ok(insn) = d.decode(&code[i..]) else {
            return;
        };
        let mut next = i + insn.len;
        if insn.nop {
            if next == len {
                return;
            }
            while next < len {
                match d.decode(&code[next..]) {
                    Ok(n) if n.nop => next += n.len,
                    _ => break,
                }
            }
            add_nop(&mut code[i..next]);
        }
        i = next;
    }
}
