//! Tests of arch/x86/kernel/ftrace_tramp/{decode,build}.rs.
//!
//! The builder decodes and relocates through the `decode::Decoder` trait; here it runs on
//! [`common::Iced`] (iced-x86 and a model of `text_poke_apply_relocation()`), in the kernel
//! on the kernel's decoder and `text_poke_apply_relocation()` itself.
//!
//! The templates are the real `ftrace_caller` and `ftrace_regs_caller` bytes of v7.3 kernels
//! built by the workbench (fixtures/templates/*.txt, written by `tools/workbench fixtures`).
//! Every trampoline is decoded with iced-x86 and compared, instruction by instruction, with
//! the template decoded at its own address.
//!
//! Hand-made templates check the two rules of the builder: relocation decides inside or
//! outside exactly as `need_reloc()` in arch/x86/kernel/alternative.c does, and the copied
//! range holds no return, no indirect branch and no branch into a thunk.

use std::collections::HashMap;
use std::fs;
use std::ops::Range;
use std::path::PathBuf;

mod common;

use common::Iced;
use execslot_host::build::*;
use execslot_host::decode::{DecodeError, Decoder as _, Insn, Kind};
use iced_x86::{
    Code, Decoder, DecoderOptions, EncodingKind, FlowControl, Instruction, Mnemonic, OpKind,
    Register,
};
use proptest::prelude::*;

struct Fixture {
    name: String,
    config: HashMap<String, String>,
    syms: HashMap<String, u64>,
    code: HashMap<String, Vec<u8>>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures/templates");
    let mut out = Vec::new();
    for entry in fs::read_dir(&dir).expect("fixtures/templates") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "txt") {
            continue;
        }
        let mut f = Fixture {
            name: path.file_stem().unwrap().to_string_lossy().into_owned(),
            config: HashMap::new(),
            syms: HashMap::new(),
            code: HashMap::new(),
        };
        for line in fs::read_to_string(&path).unwrap().lines() {
            let parts: Vec<&str> = line.split_whitespace().collect();
            match parts.as_slice() {
                ["config", k, v] => {
                    f.config.insert(k.to_string(), v.to_string());
                }
                ["sym", k, v] => {
                    f.syms
                        .insert(k.to_string(), u64::from_str_radix(v, 16).unwrap());
                }
                ["code", k, v] => {
                    let bytes = (0..v.len())
                        .step_by(2)
                        .map(|i| u8::from_str_radix(&v[i..i + 2], 16).unwrap())
                        .collect();
                    f.code.insert(k.to_string(), bytes);
                }
                _ => assert!(
                    line.starts_with('#') || line.is_empty(),
                    "bad line {line:?}"
                ),
            }
        }
        out.push(f);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(
        out.len() >= 3,
        "expected fixtures for the default, fp and mitigations configs"
    );
    out
}

/// The template of `start` (ftrace_caller or ftrace_regs_caller) in `f`.
fn template<'a>(f: &'a Fixture, regs: bool) -> Template<'a> {
    let (start, op_ptr, call, jnz) = if regs {
        (
            "ftrace_regs_caller",
            "ftrace_regs_caller_op_ptr",
            "ftrace_regs_call",
            Some("ftrace_regs_caller_jmp"),
        )
    } else {
        ("ftrace_caller", "ftrace_caller_op_ptr", "ftrace_call", None)
    };
    let addr = f.syms[start];
    let off = |s: &str| (f.syms[s] - addr) as usize;
    Template {
        code: &f.code[start],
        addr,
        op_ptr: off(op_ptr),
        call: off(call),
        jnz: jnz.map(off),
        thunks: &[],
    }
}

/// What a relative displacement addresses, as the tests tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RelKind {
    Data,
    Branch,
}

/// The relative displacement of `i`, if it has one, and what it addresses.
fn rel_of(i: &Insn) -> Option<(RelKind, execslot_host::decode::Rel)> {
    match i.kind {
        Kind::Branch(r) | Kind::Jmp32(r) | Kind::OtherBranch(r) => Some((RelKind::Branch, r)),
        Kind::RipRelative(r) => Some((RelKind::Data, r)),
        Kind::Other | Kind::Ret | Kind::Indirect => None,
    }
}

/// [`Kind::Ret`], [`Kind::Indirect`] or else [`Kind::Other`].
fn flow(i: &Insn) -> Kind {
    match i.kind {
        Kind::Ret | Kind::Indirect => i.kind,
        _ => Kind::Other,
    }
}

/// The opcode bytes of the legacy-encoded instruction `bytes`, after prefixes and REX.
fn opcode(bytes: &[u8]) -> &[u8] {
    let prefix = |b: &u8| {
        [
            0x26, 0x2e, 0x36, 0x3e, 0x64, 0x65, 0x66, 0x67, 0xf0, 0xf2, 0xf3,
        ]
        .contains(b)
            || b & 0xf0 == 0x40
    };
    &bytes[bytes.iter().take_while(|b| prefix(b)).count()..]
}

fn decode_all(code: &[u8], ip: u64) -> Vec<Instruction> {
    let mut d = Decoder::with_ip(64, code, ip, DecoderOptions::NONE);
    let mut v = Vec::new();
    while d.can_decode() {
        let i = d.decode();
        assert!(!i.is_invalid(), "iced cannot decode at {:#x}", i.ip());
        v.push(i);
    }
    v
}

fn is_rel_branch(i: &Instruction) -> bool {
    matches!(
        i.op0_kind(),
        OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64
    )
}

/// `!need_reloc()` of arch/x86/kernel/alternative.c, as create_trampoline() calls it
/// (`text_poke_apply_relocation(tramp, tramp, size, template, size)`): a target stays
/// relative unless `target < src || target > src + src_len`, so the template's end is
/// inside.
fn inside(t: &Template<'_>, target: u64) -> bool {
    let (src, src_len) = (t.addr, t.code.len() as u64);
    !(target < src || target > src + src_len)
}

const OPS: u64 = 0xffff_8880_0123_4560;
const FUNC: u64 = 0xffff_ffff_8123_4567;

/// Slot addresses to build at, relative to where execmem puts them on x86-64 (module space
/// starts 1 GiB above the kernel image), plus edges of the +-2 GiB reach.
fn slot_addresses(t: &Template<'_>) -> Vec<u64> {
    vec![
        0xffff_ffff_a000_0000,
        0xffff_ffff_a012_3450,
        0xffff_ffff_a000_2013, // misaligned
        t.addr + 0x1000,       // right after the template
        t.addr - 0x7000_0000,  // far below, still within reach
        0xffff_ffff_feff_f000, // end of the module area, ~2 GiB above the image
    ]
}

/// The runs of NOPs, as `insn_is_nop()` sees them, in the copy of `t` that the builder
/// relocates (the jnz is a NOP there): `text_poke_apply_relocation()` rewrites each as one
/// NOP or a jump over INT3 padding, unless it is a single NOP that ends the template.
fn nop_runs(t: &Template<'_>) -> Vec<Range<usize>> {
    let mut code = t.code.to_vec();
    code[t.call..t.call + 5].copy_from_slice(&[0xe8, 0, 0, 0, 0]);
    if let Some(j) = t.jnz {
        code[j..j + 2].copy_from_slice(&[0x66, 0x90]);
    }
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut off = 0;
    while off < code.len() {
        let i = Iced.decode(&code[off..]).unwrap();
        if i.nop {
            match runs.last_mut() {
                Some(r) if r.end == off => r.end = off + i.len,
                _ => runs.push(off..off + i.len),
            }
        }
        off += i.len;
    }
    runs
}

/// The copy of the NOPs at `r` in the trampoline `out` built at `at`: NOPs, or a jump to
/// the end of the run over INT3 padding, and nothing else.
fn check_nop_run(out: &[u8], at: u64, r: &Range<usize>) {
    let new = decode_all(&out[r.clone()], at + r.start as u64);
    let nops = new.iter().all(|i| i.mnemonic() == Mnemonic::Nop);
    let jump_over = new[0].is_jmp_short_or_near()
        && new[0].near_branch_target() == at + r.end as u64
        && new[1..].iter().all(|i| i.mnemonic() == Mnemonic::Int3);
    assert!(
        nops || jump_over,
        "NOPs at +{:#x}..+{:#x} became {:02x?}",
        r.start,
        r.end,
        &out[r.clone()]
    );
}

/// Checks the trampoline `out` built at `at` from `t` instruction by instruction: each
/// instruction of the template is at the same offset in the copy (the ORC unwinder relies
/// on it), with the same length and bytes, except for the rewrites of the builder and of
/// `text_poke_apply_relocation()`: relocated displacements, a `jmp` rel32 shortened to a
/// `jmp` rel8 and INT3, and runs of NOPs rewritten as NOPs or a jump over INT3.
/// Returns how many instructions were relocated (their displacement changed).
fn check_trampoline(t: &Template<'_>, at: u64, ret: Return, out: &[u8], layout: Layout) -> usize {
    let len = t.code.len();
    assert_eq!(layout, Layout::new(len));
    assert_eq!(out.len(), layout.size);
    assert_eq!(layout.ops_offset % 8, 0);
    assert!(layout.ops_offset >= len + RET_AREA);

    // The copy decodes as a whole too, from its first byte.
    decode_all(&out[..len], at);
    let runs = nop_runs(t);
    let mut relocated = 0;
    for o in decode_all(t.code, t.addr) {
        let off = (o.ip() - t.addr) as usize;
        if let Some(r) = runs.iter().find(|r| r.contains(&off)) {
            if r.start == off {
                check_nop_run(out, at, r);
                if Some(off) == t.jnz && r.end == off + 2 {
                    assert_eq!(out[off..off + 2], [0x66, 0x90], "+{off:#x}");
                }
            }
            continue;
        }
        let n = decode_all(&out[off..off + o.len()], at + off as u64)[0];
        let shortened = o.code() == Code::Jmp_rel32_64 && n.code() == Code::Jmp_rel8_64;
        if shortened {
            assert!(out[off + 2..off + o.len()].iter().all(|&b| b == 0xcc));
        } else {
            assert_eq!(o.len(), n.len(), "length changed at +{off:#x}");
        }
        let ob = &t.code[off..off + o.len()];
        let nb = &out[off..off + n.len()];
        if off == t.op_ptr {
            assert_eq!(n.code(), Code::Mov_r64_rm64, "+{off:#x}: {n}");
            assert_eq!(n.op0_register(), Register::RDX);
            assert!(n.is_ip_rel_memory_operand());
            assert_eq!(n.ip_rel_memory_address(), at + layout.ops_offset as u64);
            assert_eq!(o.ip_rel_memory_address(), o.ip_rel_memory_address());
        } else if off == t.call {
            assert_eq!(n.mnemonic(), Mnemonic::Call);
            assert_eq!(n.len(), 5);
            assert_eq!(n.near_branch_target(), FUNC);
        } else if Some(off) == t.jnz {
            unreachable!("the jnz is a NOP in the copy");
        } else if o.is_ip_rel_memory_operand() {
            assert_eq!(n.code(), o.code());
            let target = o.ip_rel_memory_address();
            if inside(t, target) {
                assert_eq!(
                    n.ip_rel_memory_address(),
                    at + (target - t.addr),
                    "+{off:#x}"
                );
            } else {
                assert_eq!(n.ip_rel_memory_address(), target, "+{off:#x}");
                relocated += 1;
            }
        } else if is_rel_branch(&o) {
            if !shortened {
                assert_eq!(n.code(), o.code());
            }
            let target = o.near_branch_target();
            if inside(t, target) {
                assert_eq!(n.near_branch_target(), at + (target - t.addr), "+{off:#x}");
            } else {
                assert_eq!(n.near_branch_target(), target, "+{off:#x}");
                relocated += 1;
            }
        } else {
            assert_eq!(nb, ob, "+{off:#x}: {o} became {n}");
        }
    }

    let tail = &out[len..layout.ops_offset];
    match ret {
        Return::Ret => {
            assert_eq!(tail[0], 0xc3);
            assert!(tail[1..].iter().all(|&b| b == 0xcc));
        }
        Return::Thunk(thunk) => {
            let j = decode_all(&tail[..5], at + len as u64);
            assert_eq!(j[0].mnemonic(), Mnemonic::Jmp);
            assert_eq!(j[0].near_branch_target(), thunk);
            assert!(tail[5..].iter().all(|&b| b == 0xcc));
        }
    }
    assert_eq!(out[layout.ops_offset..], OPS.to_le_bytes());
    relocated
}

fn build_at(t: &Template<'_>, at: u64, ret: Return) -> Result<(Vec<u8>, Layout), BuildError> {
    let mut out = vec![0u8; Layout::new(t.code.len()).size];
    build(&Iced, t, at, OPS, FUNC, ret, &mut out).map(|l| (out, l))
}

#[test]
fn fixtures_cover_the_configurations() {
    let fx = fixtures();
    let has = |k: &str| fx.iter().any(|f| f.config[k] == "y");
    let lacks = |k: &str| fx.iter().any(|f| f.config[k] != "y");
    for k in ["CONFIG_FRAME_POINTER", "CONFIG_MITIGATION_RETHUNK"] {
        assert!(has(k) && lacks(k), "fixtures with and without {k}");
    }
}

#[test]
fn templates_decode_the_same_as_iced() {
    for f in fixtures() {
        for regs in [false, true] {
            let t = template(&f, regs);
            let mut off = 0;
            for i in decode_all(t.code, t.addr) {
                let ours = Iced.decode(&t.code[off..]).unwrap_or_else(|e| {
                    panic!("{} +{off:#x} {i}: {e:?}", f.name);
                });
                assert_eq!(ours.len, i.len(), "{} +{off:#x} {i}", f.name);
                assert_eq!(
                    rel_of(&ours).map(|r| r.0),
                    if i.is_ip_rel_memory_operand() {
                        Some(RelKind::Data)
                    } else if is_rel_branch(&i) {
                        Some(RelKind::Branch)
                    } else {
                        None
                    }
                );
                off += i.len();
            }
            assert_eq!(off, t.code.len());
        }
    }
}

#[test]
fn trampolines_match_their_templates() {
    for f in fixtures() {
        let thunk = f.syms.get("__x86_return_thunk").copied();
        for regs in [false, true] {
            let t = template(&f, regs);
            // The op_ptr load of the template reads function_trace_op.
            let op = decode_all(&t.code[t.op_ptr..t.op_ptr + 7], t.addr + t.op_ptr as u64);
            assert_eq!(op[0].ip_rel_memory_address(), f.syms["function_trace_op"]);
            for at in slot_addresses(&t) {
                for ret in [
                    Return::Ret,
                    Return::Thunk(thunk.unwrap_or(f.syms["ftrace_stub"])),
                ] {
                    let (out, layout) = build_at(&t, at, ret)
                        .unwrap_or_else(|e| panic!("{} regs={regs} at {at:#x}: {e:?}", f.name));
                    check_trampoline(&t, at, ret, &out, layout);
                }
            }
        }
    }
}

#[test]
fn template_sizes_and_layouts() {
    for f in fixtures() {
        let caller = f.code["ftrace_caller"].len();
        let regs = f.code["ftrace_regs_caller"].len();
        // Sizes seen on v7.3 x86-64: 194/327 bytes without mitigations and frame pointers,
        // longer with either.
        assert!((190..260).contains(&caller), "{}: {caller}", f.name);
        assert!((320..400).contains(&regs), "{}: {regs}", f.name);
        // Sixteen-byte granules: a trampoline wastes less than a granule plus the return.
        let l = Layout::new(caller);
        assert!(l.size - caller < 16 + RET_AREA + 8, "{}: {l:?}", f.name);
    }
}

#[test]
fn a_text_poke_int3_on_the_call_site_is_ignored() {
    let f = &fixtures()[0];
    let t = template(f, false);
    let mut poked = t.code.to_vec();
    poked[t.call] = 0xcc;
    poked[t.call + 1..t.call + 5].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    let tp = Template { code: &poked, ..t };
    let at = 0xffff_ffff_a000_1000;
    assert_eq!(
        build_at(&tp, at, Return::Ret),
        build_at(&t, at, Return::Ret)
    );
}

#[test]
fn out_of_reach_is_refused() {
    let f = &fixtures()[0];
    for regs in [false, true] {
        let t = template(f, regs);
        // 3 GiB below the kernel image: function_trace_op is out of rel32 reach.
        let at = t.addr - 0xc000_0000;
        match build_at(&t, at, Return::Ret) {
            Err(BuildError::OutOfReach { .. }) => {}
            other => panic!("{other:?}"),
        }
        // The call target alone out of reach.
        let mut out = vec![0; Layout::new(t.code.len()).size];
        let r = build(
            &Iced,
            &t,
            0xffff_ffff_a000_0000,
            OPS,
            0xffff_8880_0000_0000,
            Return::Ret,
            &mut out,
        );
        assert_eq!(r, Err(BuildError::OutOfReach { offset: t.call }));
    }
}

#[test]
fn bad_templates_are_refused() {
    let f = &fixtures()[0];
    let t = template(f, true);
    let at = 0xffff_ffff_a000_0000;
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut code = t.code.to_vec();
        edit(&mut code);
        code
    };

    let code = with(&|c| c[t.op_ptr + 2] = 0x05); // movq ...(%rip), %rax
    assert_eq!(
        build_at(&Template { code: &code, ..t }, at, Return::Ret),
        Err(BuildError::NotOpPtrLoad)
    );
    let code = with(&|c| c[t.jnz.unwrap()] = 0x74);
    assert_eq!(
        build_at(&Template { code: &code, ..t }, at, Return::Ret),
        Err(BuildError::NotJnz)
    );
    let code = with(&|c| c[t.call] = 0xe9);
    assert_eq!(
        build_at(&Template { code: &code, ..t }, at, Return::Ret),
        Err(BuildError::NotCall)
    );
    // A VEX instruction where the first instruction was.
    let code = with(&|c| c[..4].copy_from_slice(&[0xc5, 0xf8, 0x77, 0x90]));
    assert_eq!(
        build_at(&Template { code: &code, ..t }, at, Return::Ret),
        Err(BuildError::Decode {
            offset: 0,
            err: DecodeError::Unsupported(0xc5)
        })
    );
    // Offsets that are not instruction starts, or outside the template.
    let mid = Template {
        jnz: Some(t.op_ptr + 1),
        ..t
    };
    assert!(matches!(
        build_at(&mid, at, Return::Ret),
        Err(BuildError::NotJnz | BuildError::NotInsnStart { .. })
    ));
    let mid = Template {
        op_ptr: t.op_ptr - 1,
        ..t
    };
    assert_eq!(
        build_at(&mid, at, Return::Ret),
        Err(BuildError::NotOpPtrLoad)
    );
    let outside = Template {
        call: t.code.len() - 2,
        ..t
    };
    assert_eq!(
        build_at(&outside, at, Return::Ret),
        Err(BuildError::BadLayout)
    );
    // The last instruction (ftrace_caller ends with a 7-byte add) cut short.
    let tc = template(f, false);
    let short = Template {
        code: &tc.code[..tc.code.len() - 1],
        ..tc
    };
    assert!(matches!(
        build_at(&short, at, Return::Ret),
        Err(BuildError::Straddles { .. })
    ));
    // A wrong output size.
    let mut out = vec![0; Layout::new(t.code.len()).size - 1];
    assert_eq!(
        build(&Iced, &t, at, OPS, FUNC, Return::Ret, &mut out),
        Err(BuildError::BadLayout)
    );
}

/// A hand-made template with what the v7.3 ones have only in some configurations: the
/// call-depth accounting `sarq $5, %gs:__x86_call_depth(%rip)` patched in by alternatives,
/// a RIP-relative load, branches inside and outside the template.
#[test]
fn synthetic_template_relocates_every_kind() {
    let mut code = Vec::new();
    code.extend([0x65, 0x48, 0xc1, 0x3d, 0x10, 0x20, 0x30, 0x00, 0x05]); // sarq $5,%gs:..(%rip)
    let op_ptr = code.len();
    code.extend([0x48, 0x8b, 0x15, 0x00, 0x01, 0x00, 0x00]); // movq ..(%rip),%rdx
    code.extend([0x74, 0x05]); // je +5: inside
    let call = code.len();
    code.extend([0xe8, 0x11, 0x22, 0x33, 0x00]); // call: the tracer
    code.extend([0x48, 0x8b, 0x05, 0x00, 0x00, 0x10, 0x00]); // movq ..(%rip),%rax
    code.extend([0x0f, 0x84, 0x00, 0x00, 0x00, 0x01]); // je far: outside
    code.extend([0xe9, 0xef, 0xff, 0xff, 0xff]); // jmp back: inside
    code.extend([0x48, 0x8d, 0x05, 0xf9, 0xff, 0xff, 0xff]); // lea -7(%rip),%rax: inside
    code.extend([0x0f, 0x1f, 0x44, 0x00, 0x00]); // nopl
    let t = Template {
        code: &code,
        addr: 0xffff_ffff_8104_5a20,
        op_ptr,
        call,
        jnz: None,
        thunks: &[],
    };
    for at in slot_addresses(&t) {
        let (out, layout) = build_at(&t, at, Return::Ret).unwrap();
        // sarq, the movq and the far je; the rest stays inside.
        assert_eq!(check_trampoline(&t, at, Return::Ret, &out, layout), 3);
        // The gs-relative sarq keeps its absolute (per-CPU offset) address.
        let n = decode_all(&out[..9], at);
        assert_eq!(n[0].segment_prefix(), Register::GS);
        assert_eq!(n[0].ip_rel_memory_address(), t.addr + 9 + 0x302010);
    }
    // A rel8 branch that leaves the template cannot be relocated.
    let mut far8 = code.clone();
    far8[op_ptr + 7..op_ptr + 9].copy_from_slice(&[0x74, 0x7f]);
    let tf = Template { code: &far8, ..t };
    assert_eq!(
        build_at(&tf, 0xffff_ffff_a000_0000, Return::Ret),
        Err(BuildError::OutOfReach { offset: op_ptr + 7 })
    );
}

/// The host's `Decoder` against iced's own view of random bytes: it accepts every legacy
/// encoded instruction but EIP-relative ones and refuses the others, and agrees on the length, on where the
/// relative displacement sits and what it reaches, and on the kinds the builder tells
/// apart; the branches it calls relocated are those of `__apply_relocation()`'s opcode
/// switch. The kernel's `Decoder` gives the same from `struct insn`.
fn check_against_iced(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut d = Decoder::with_ip(64, bytes, 0x1000, DecoderOptions::NONE);
    let i = d.decode();
    let ours = Iced.decode(bytes);
    if i.is_invalid() {
        return Ok(());
    }
    // The host's decoder, like the kernel's for VEX, looks at the encoding before the
    // operands: a VEX, EVEX, XOP or 3DNow! instruction is refused for its encoding even
    // where its operand is EIP-relative. (The kernel's takes 3DNow! as a legacy
    // instruction; no template holds one.)
    if i.encoding() != EncodingKind::Legacy {
        prop_assert!(
            matches!(ours, Err(DecodeError::Unsupported(b)) if b != 0x67),
            "{:02x?} {}: {:?}",
            &bytes[..i.len()],
            i,
            ours
        );
        return Ok(());
    }
    if i.memory_base() == Register::EIP {
        prop_assert_eq!(ours, Err(DecodeError::Unsupported(0x67)), "{}", i);
        return Ok(());
    }
    let ours =
        ours.map_err(|e| TestCaseError::fail(format!("{:02x?} {i}: {e:?}", &bytes[..i.len()])))?;
    prop_assert_eq!(ours.len, i.len(), "{:02x?} {}", &bytes[..i.len()], i);
    // An indirect branch is refused as such, whatever its operand.
    let indirect = matches!(
        i.flow_control(),
        FlowControl::IndirectBranch | FlowControl::IndirectCall
    );
    let want = if indirect {
        None
    } else if i.is_ip_rel_memory_operand() {
        Some(RelKind::Data)
    } else if is_rel_branch(&i) {
        Some(RelKind::Branch)
    } else {
        None
    };
    prop_assert_eq!(
        rel_of(&ours).map(|r| r.0),
        want,
        "{:02x?} {}",
        &bytes[..i.len()],
        i
    );
    let kind = common::ret_or_indirect(&i).unwrap_or(Kind::Other);
    prop_assert_eq!(flow(&ours), kind, "{:02x?} {}", &bytes[..i.len()], i);
    // The branches whose displacement text_poke_apply_relocation() relocates are those
    // of its opcode switch: jcc (70-7f, 0f 80-8f), jmp (eb, e9) and call (e8).
    let op = opcode(bytes);
    let relocated = matches!(op[0], 0x70..=0x7f | 0xe8 | 0xe9 | 0xeb)
        || (op[0] == 0x0f && (0x80..=0x8f).contains(&op[1]));
    prop_assert_eq!(
        matches!(ours.kind, Kind::Branch(_) | Kind::Jmp32(_)),
        relocated && ours.kind != Kind::Indirect,
        "{:02x?} {}",
        &bytes[..i.len()],
        i
    );
    prop_assert_eq!(matches!(ours.kind, Kind::Jmp32(_)), op[0] == 0xe9);
    if let Some((what, r)) = rel_of(&ours) {
        let disp = r.value(bytes).unwrap();
        let next = 0x1000 + i.len() as u64;
        let target = next.wrapping_add(disp as u64);
        match what {
            RelKind::Data => prop_assert_eq!(target, i.ip_rel_memory_address()),
            RelKind::Branch => {
                prop_assert!(matches!(
                    i.flow_control(),
                    FlowControl::UnconditionalBranch
                        | FlowControl::ConditionalBranch
                        | FlowControl::Call
                        | FlowControl::XbeginXabortXend
                ));
                prop_assert_eq!(target, i.near_branch_target());
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20000))]

    #[test]
    fn decoder_agrees_with_iced(bytes in proptest::collection::vec(any::<u8>(), 15)) {
        check_against_iced(&bytes)?;
    }

    /// Biased towards what templates hold: optional prefixes and REX, then the 0f map or
    /// a one-byte opcode, then a ModRM byte.
    #[test]
    fn decoder_agrees_with_iced_on_modrm_forms(
        prefix in proptest::sample::select(vec![None, Some(0x66u8), Some(0x65), Some(0xf3), Some(0xf2), Some(0x67)]),
        rex in proptest::option::of(0x40u8..0x50),
        escape in any::<bool>(),
        op in any::<u8>(),
        rest in proptest::collection::vec(any::<u8>(), 13),
    ) {
        let mut bytes: Vec<u8> = prefix.into_iter().chain(rex).collect();
        if escape {
            bytes.push(0x0f);
        }
        bytes.push(op);
        bytes.extend(rest);
        check_against_iced(&bytes)?;
    }
}

/// The host's `Decoder` handles every instruction of the templates and of a corpus of
/// typical kernel instructions; refusing one of them would make the builder give up.
#[test]
fn decoder_covers_common_instructions() {
    let corpus: &[&[u8]] = &[
        &[0x9c],                                        // pushf
        &[0x9d],                                        // popf
        &[0x55],                                        // push %rbp
        &[0x41, 0x57],                                  // push %r15
        &[0x48, 0x89, 0xe5],                            // mov %rsp,%rbp
        &[0xff, 0x74, 0x24, 0x10],                      // push 0x10(%rsp)
        &[0x48, 0x81, 0xec, 0xa8, 0x00, 0x00, 0x00],    // sub $0xa8,%rsp
        &[0x48, 0xc7, 0x44, 0x24, 0x78, 0, 0, 0, 0],    // movq $0,0x78(%rsp)
        &[0x48, 0xc7, 0xc1, 0x18, 0, 0, 0],             // mov $0x18,%rcx
        &[0x48, 0x8d, 0x8c, 0x24, 0xb0, 0, 0, 0],       // lea 0xb0(%rsp),%rcx
        &[0x48, 0x85, 0xc0],                            // test %rax,%rax
        &[0x66, 0x90],                                  // xchg %ax,%ax
        &[0x0f, 0x1f, 0x00],                            // nopl (%rax)
        &[0x66, 0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0], // cs nopw
        &[0xf3, 0x0f, 0x1e, 0xfa],                      // endbr64
        &[0x0f, 0xae, 0xe8],                            // lfence
        &[0x65, 0x48, 0xc1, 0x3d, 0, 0, 0, 0, 0x05],    // sarq $5,%gs:0(%rip)
        &[0x65, 0x48, 0x8b, 0x04, 0x25, 0, 0, 0, 0],    // mov %gs:0,%rax
        &[0xe8, 0, 0, 0, 0],                            // call
        &[0xe9, 0, 0, 0, 0],                            // jmp
        &[0xc3],                                        // ret
        &[0xcc],                                        // int3
        &[0x0f, 0x0b],                                  // ud2
        &[0x48, 0xb8, 1, 2, 3, 4, 5, 6, 7, 8],          // movabs
        &[0x2e, 0xe8, 0, 0, 0, 0],                      // cs call (retpoline style)
    ];
    for bytes in corpus {
        let i = decode_all(bytes, 0x1000);
        assert_eq!(i.len(), 1, "{bytes:02x?}");
        let ours = Iced
            .decode(bytes)
            .unwrap_or_else(|e| panic!("{bytes:02x?}: {e:?}"));
        assert_eq!(ours.len, bytes.len(), "{bytes:02x?}");
    }
}

// ---------------------------------------------------------------------------------------
// Relocation: inside or outside as need_reloc() decides.

/// Where a hand-made instruction's displacement points, relative to the template.
#[derive(Debug, Clone, Copy)]
enum To {
    /// The template's end: its final return, which the copy replaces with its own.
    End,
    /// The template's last byte.
    EndMinus1,
    /// The byte before the template.
    BeforeStart,
    /// The template's first byte.
    Start,
    /// Far outside, below the template.
    FarBelow,
}

/// A template assembled from instructions whose displacements are filled in once its
/// length is known.
struct Synth {
    code: Vec<u8>,
    op_ptr: usize,
    call: usize,
    /// (offset of the instruction, its length, offset of its displacement, size, target).
    fixups: Vec<(usize, usize, usize, usize, To)>,
}

const SYNTH_ADDR: u64 = 0xffff_ffff_8104_5a20;

impl Synth {
    /// Starts with the op_ptr load and the tracer call that every template has.
    fn new() -> Self {
        let mut s = Synth {
            code: Vec::new(),
            op_ptr: 0,
            call: 0,
            fixups: Vec::new(),
        };
        s.op_ptr = s.raw(&[0x48, 0x8b, 0x15, 0, 1, 0, 0]); // movq ..(%rip),%rdx
        s.call = s.raw(&[0xe8, 0, 0, 0, 0]); // call: the tracer
        s
    }

    fn raw(&mut self, bytes: &[u8]) -> usize {
        let off = self.code.len();
        self.code.extend_from_slice(bytes);
        off
    }

    /// `bytes` with a `size`-byte displacement at `disp` (from the instruction's start).
    fn rel(&mut self, bytes: &[u8], disp: usize, size: usize, to: To) -> usize {
        let off = self.raw(bytes);
        self.fixups.push((off, bytes.len(), off + disp, size, to));
        off
    }

    /// The code and the offsets of the op_ptr load and of the call.
    fn finish(mut self) -> (Vec<u8>, usize, usize) {
        let len = self.code.len() as i64;
        for &(off, insn_len, disp, size, to) in &self.fixups {
            let target = match to {
                To::End => len,
                To::EndMinus1 => len - 1,
                To::BeforeStart => -1,
                To::Start => 0,
                To::FarBelow => -0x10_0000,
            };
            let value = target - (off + insn_len) as i64;
            if size == 1 {
                self.code[disp] = i8::try_from(value).unwrap() as u8;
            } else {
                let v = i32::try_from(value).unwrap().to_le_bytes();
                self.code[disp..disp + 4].copy_from_slice(&v);
            }
        }
        (self.code, self.op_ptr, self.call)
    }
}

/// Every instruction of the trampoline `out` built at `at` whose target (branch or
/// RIP-relative operand) is not what create_trampoline() would give it: the template's
/// target if need_reloc(), else the same offset in the copy.
fn need_reloc_mismatches(t: &Template<'_>, at: u64, out: &[u8]) -> Vec<String> {
    let len = t.code.len();
    let mut bad = Vec::new();
    for (o, n) in decode_all(t.code, t.addr)
        .iter()
        .zip(decode_all(&out[..len], at))
    {
        let off = (o.ip() - t.addr) as usize;
        if off == t.op_ptr || off == t.call {
            continue;
        }
        let (old, new) = if o.is_ip_rel_memory_operand() {
            (o.ip_rel_memory_address(), n.ip_rel_memory_address())
        } else if is_rel_branch(o) {
            (o.near_branch_target(), n.near_branch_target())
        } else {
            continue;
        };
        let want = if inside(t, old) {
            at + (old - t.addr)
        } else {
            old
        };
        if new != want {
            bad.push(format!(
                "+{off:#x} `{o}`: template target {} -> trampoline target {new:#x}, \
                 mainline {want:#x}",
                if old == t.addr + len as u64 {
                    "= end".to_string()
                } else {
                    format!("{old:#x}")
                },
            ));
        }
    }
    bad
}

/// rel32 branches and RIP-relative operands to the template's end, its last byte, the
/// byte before it and far below it.
#[test]
fn rel32_and_rip_relative_targets_follow_need_reloc() {
    let mut s = Synth::new();
    s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::End); // jmp end
    s.rel(&[0x0f, 0x84, 0, 0, 0, 0], 2, 4, To::End); // je end
    s.rel(&[0xe8, 0, 0, 0, 0], 1, 4, To::End); // call end
    s.rel(&[0x48, 0x8b, 0x05, 0, 0, 0, 0], 3, 4, To::End); // movq end(%rip),%rax
    s.rel(&[0x80, 0x3d, 0, 0, 0, 0, 0x00], 2, 4, To::End); // cmpb $0,end(%rip)
    s.rel(&[0x65, 0x48, 0xc1, 0x3d, 0, 0, 0, 0, 5], 4, 4, To::End); // sarq $5,%gs:end(%rip)
    s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::EndMinus1); // jmp end-1
    s.rel(&[0x0f, 0x82, 0, 0, 0, 0], 2, 4, To::EndMinus1); // jb end-1
    s.rel(&[0x48, 0x8d, 0x0d, 0, 0, 0, 0], 3, 4, To::EndMinus1); // lea end-1(%rip),%rcx
    s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::BeforeStart); // jmp start-1
    s.rel(&[0x0f, 0x83, 0, 0, 0, 0], 2, 4, To::BeforeStart); // jae start-1
    s.rel(&[0x48, 0x8b, 0x05, 0, 0, 0, 0], 3, 4, To::BeforeStart); // movq start-1(%rip),%rax
    s.rel(&[0xe8, 0, 0, 0, 0], 1, 4, To::FarBelow); // call far below
    s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::Start); // jmp start
    s.raw(&[0x0f, 0x1f, 0x44, 0x00, 0x00]); // nopl
    let (code, op_ptr, call) = s.finish();
    let t = synth(&code, op_ptr, call);
    let mut bad = Vec::new();
    for at in slot_addresses(&t) {
        let (out, layout) = build_at(&t, at, Return::Ret).unwrap();
        for m in need_reloc_mismatches(&t, at, &out) {
            bad.push(format!("at {at:#x}: {m}"));
        }
        if bad.is_empty() {
            // Relocated: the three to start-1 and the call far below; the rest stays.
            assert_eq!(check_trampoline(&t, at, Return::Ret, &out, layout), 4);
        }
    }
    assert!(
        bad.is_empty(),
        "{} mismatches:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

/// A rel8 branch to the template's end stays relative, as in mainline, and so reaches the
/// trampoline's own return. One to the template's last byte stays relative too; one
/// that leaves the template cannot be relocated (mainline BUG()s in apply_reloc_n(),
/// the builder refuses).
#[test]
fn rel8_branches_to_the_end_stay_relative() {
    let mut s = Synth::new();
    s.rel(&[0x75, 0], 1, 1, To::End); // jne end
    s.rel(&[0xeb, 0], 1, 1, To::End); // jmp end
    s.rel(&[0x74, 0], 1, 1, To::EndMinus1); // je end-1
                                            // One NOP at the end, which text_poke_apply_relocation() leaves as it is (a run of
                                            // NOPs it would rewrite, and a branch into it is refused: see
                                            // branches_into_runs_of_nops_are_refused).
    s.raw(&[0x66, 0x90]);
    let (code, op_ptr, call) = s.finish();
    let t = synth(&code, op_ptr, call);
    for at in slot_addresses(&t) {
        for ret in [Return::Ret, Return::Thunk(RET_THUNK)] {
            let (out, layout) =
                build_at(&t, at, ret).unwrap_or_else(|e| panic!("at {at:#x}: {e:?}"));
            let bad = need_reloc_mismatches(&t, at, &out);
            assert!(bad.is_empty(), "{}", bad.join("\n"));
            check_trampoline(&t, at, ret, &out, layout);
            // Both jumps to the end land on the trampoline's return.
            let end = at + code.len() as u64;
            let new = decode_all(&out[..code.len()], at);
            let to_end = new
                .iter()
                .filter(|i| is_rel_branch(i) && i.near_branch_target() == end);
            assert_eq!(to_end.count(), 2);
        }
    }
    let mut s = Synth::new();
    let out8 = s.rel(&[0xeb, 0], 1, 1, To::BeforeStart); // jmp start-1
    let (code, op_ptr, call) = s.finish();
    let t = synth(&code, op_ptr, call);
    assert_eq!(
        build_at(&t, 0xffff_ffff_a000_0000, Return::Ret),
        Err(BuildError::OutOfReach { offset: out8 })
    );
}

// ---------------------------------------------------------------------------------------
// What the copied range may not hold: returns, indirect branches, branches into thunks.

/// A template of nops around the op_ptr load and the call, with `insn` in slot `slot`
/// (0 to 4) after `pad` bytes of nops; returns the code and the offsets of op_ptr, call
/// and `insn`.
fn with_insn(slot: usize, pad: usize, insn: &[u8]) -> (Vec<u8>, usize, usize, usize) {
    let mut code = Vec::new();
    let (mut op_ptr, mut call, mut at) = (0, 0, 0);
    for s in 0..5 {
        if s == slot {
            code.extend(std::iter::repeat_n(0x90, pad));
            at = code.len();
            code.extend_from_slice(insn);
        }
        match s {
            0 => code.extend([0x0f, 0x1f, 0x44, 0x00, 0x00]),
            1 => {
                op_ptr = code.len();
                code.extend([0x48, 0x8b, 0x15, 0, 1, 0, 0]);
            }
            2 => {
                call = code.len();
                code.extend([0xe8, 0, 0, 0, 0]);
            }
            3 => code.extend([0x48, 0x89, 0xe5]), // mov %rsp,%rbp
            _ => {}
        }
    }
    (code, op_ptr, call, at)
}

/// A synthetic template at [`SYNTH_ADDR`], without a jnz or thunks.
fn synth(code: &[u8], op_ptr: usize, call: usize) -> Template<'_> {
    Template {
        code,
        addr: SYNTH_ADDR,
        op_ptr,
        call,
        jnz: None,
        thunks: &[],
    }
}

/// The builder's form of address ranges.
fn th(ranges: &[Range<u64>]) -> Vec<Thunks> {
    ranges
        .iter()
        .map(|r| Thunks {
            start: r.start,
            len: r.end - r.start,
        })
        .collect()
}

/// Builds `insn` at every slot and with several paddings (so at offsets in both halves of
/// a cache line) and at several addresses; returns each result with the offset of `insn`.
fn build_with(insn: &[u8], thunks: &[Range<u64>]) -> Vec<(usize, Result<Layout, BuildError>)> {
    let mut v = Vec::new();
    for slot in 0..5 {
        for pad in [0, 1, 13, 32, 45] {
            let (code, op_ptr, call, off) = with_insn(slot, pad, insn);
            let thunks = th(thunks);
            let t = Template {
                code: &code,
                addr: SYNTH_ADDR,
                op_ptr,
                call,
                jnz: None,
                thunks: &thunks,
            };
            for at in [0xffff_ffff_a000_0000, 0xffff_ffff_a000_0030, SYNTH_ADDR] {
                v.push((off, build_at(&t, at, Return::Ret).map(|(_, l)| l)));
            }
        }
    }
    v
}

fn assert_refused(insn: &[u8], thunks: &[Range<u64>], what: Unmovable) {
    for (off, r) in build_with(insn, thunks) {
        assert_eq!(
            r,
            Err(BuildError::Unmovable { offset: off, what }),
            "{insn:02x?} at +{off:#x}"
        );
    }
}

/// `ret` and `ret $imm16`, with the prefixes compilers and assemblers emit (`rep ret`,
/// `bnd ret`, `cs ret`) and others.
#[test]
fn returns_in_the_copied_range_are_refused() {
    let forms: &[&[u8]] = &[
        &[0xc3],
        &[0xc2, 0x08, 0x00],
        &[0xf3, 0xc3],
        &[0xf2, 0xc3],
        &[0x2e, 0xc3],
        &[0x3e, 0xc3],
        &[0x48, 0xc3],
        &[0x66, 0xc3],
        &[0x66, 0xc2, 0x10, 0x00],
        &[0x2e, 0x2e, 0xc3],
    ];
    for form in forms {
        let i = decode_all(form, 0x1000);
        assert_eq!(
            (i.len(), i[0].mnemonic()),
            (1, Mnemonic::Ret),
            "{form:02x?}"
        );
        assert_refused(form, &[], Unmovable::Ret);
    }
}

/// Indirect calls and jumps through registers and memory, near and far, with REX,
/// `notrack`, `cs`, `bnd`, operand- and address-size prefixes.
#[test]
fn indirect_branches_in_the_copied_range_are_refused() {
    let forms: &[&[u8]] = &[
        &[0xff, 0xd0],                         // call *%rax
        &[0xff, 0xe0],                         // jmp *%rax
        &[0x41, 0xff, 0xd3],                   // call *%r11
        &[0x41, 0xff, 0xe3],                   // jmp *%r11
        &[0x3e, 0xff, 0xd0],                   // notrack call *%rax
        &[0x3e, 0x41, 0xff, 0xe3],             // notrack jmp *%r11
        &[0x2e, 0xff, 0xd0],                   // cs call *%rax
        &[0xf2, 0xff, 0xe0],                   // bnd jmp *%rax
        &[0x66, 0xff, 0xe0],                   // jmpw *%ax
        &[0xff, 0x15, 0x00, 0x10, 0x00, 0x00], // call *0x1000(%rip)
        &[0xff, 0x25, 0x00, 0x10, 0x00, 0x00], // jmp *0x1000(%rip)
        &[0xff, 0x14, 0x24],                   // call *(%rsp)
        &[0xff, 0x64, 0x24, 0x08],             // jmp *0x8(%rsp)
        &[0x67, 0xff, 0x10],                   // call *(%eax)
        &[0xff, 0x1c, 0x24],                   // lcall *(%rsp)
        &[0x48, 0xff, 0x1c, 0x24],             // rex.w lcall *(%rsp)
        &[0xff, 0x2c, 0x24],                   // ljmp *(%rsp)
        &[0x48, 0xff, 0x6c, 0x24, 0x10],       // rex.w ljmp *0x10(%rsp)
    ];
    for form in forms {
        let i = decode_all(form, 0x1000);
        assert_eq!(i.len(), 1, "{form:02x?}");
        assert!(
            matches!(
                i[0].flow_control(),
                FlowControl::IndirectBranch | FlowControl::IndirectCall
            ),
            "{form:02x?}: {}",
            i[0]
        );
        assert_refused(form, &[], Unmovable::Indirect);
    }
    // The other ff forms (inc, dec, push) are fine.
    for form in [
        &[0xff, 0xc0][..],
        &[0xff, 0x48, 0x08],
        &[0xff, 0x74, 0x24, 0x10],
    ] {
        for (off, r) in build_with(form, &[]) {
            assert!(r.is_ok(), "{form:02x?} at +{off:#x}: {r:?}");
        }
    }
}

/// The retpoline thunk array (16 x 32 bytes) and a return thunk, as the kernel shell
/// passes them; the template lies below both.
const RETPOLINE: u64 = 0xffff_ffff_81e0_0000;
const RET_THUNK: u64 = 0xffff_ffff_81e0_1040;

fn thunk_ranges() -> [Range<u64>; 2] {
    [RETPOLINE..RETPOLINE + 16 * 32, RET_THUNK..RET_THUNK + 1]
}

/// `bytes` with its rel32 (the last four bytes) pointing at `target` when [`with_insn`]
/// places it in slot `slot` after `pad` nops of a template at [`SYNTH_ADDR`].
fn branch_to(bytes: &[u8], target: u64, slot: usize, pad: usize) -> Vec<u8> {
    let (_, _, _, off) = with_insn(slot, pad, bytes);
    let next = SYNTH_ADDR + (off + bytes.len()) as u64;
    let mut v = bytes.to_vec();
    let n = v.len();
    let disp = i32::try_from(target.wrapping_sub(next) as i64).unwrap();
    v[n - 4..].copy_from_slice(&disp.to_le_bytes());
    v
}

/// Direct calls, jumps and conditional jumps into a thunk; the displacement depends on
/// where the instruction lands, so each placement is built separately.
#[test]
fn branches_into_thunks_are_refused() {
    let thunks = thunk_ranges();
    let forms: &[&[u8]] = &[
        &[0xe8, 0, 0, 0, 0],             // call
        &[0x2e, 0xe8, 0, 0, 0, 0],       // cs call (retpoline sites)
        &[0xe9, 0, 0, 0, 0],             // jmp
        &[0x2e, 0xe9, 0, 0, 0, 0],       // cs jmp
        &[0x0f, 0x85, 0, 0, 0, 0],       // jne
        &[0x2e, 0x0f, 0x84, 0, 0, 0, 0], // cs je
    ];
    let targets = [
        RETPOLINE,
        RETPOLINE + 11 * 32, // __x86_indirect_thunk_r11
        RETPOLINE + 16 * 32 - 1,
        RET_THUNK,
    ];
    for form in forms {
        for target in targets {
            for slot in 0..5 {
                for pad in [0, 13, 32] {
                    let insn = branch_to(form, target, slot, pad);
                    let (code, op_ptr, call, off) = with_insn(slot, pad, &insn);
                    let ranges = th(&thunks);
                    let t = Template {
                        thunks: &ranges,
                        ..synth(&code, op_ptr, call)
                    };
                    let d = decode_all(&code[off..off + insn.len()], SYNTH_ADDR + off as u64);
                    assert_eq!(d[0].near_branch_target(), target);
                    for at in [0xffff_ffff_a000_0000, 0xffff_ffff_a000_0030] {
                        assert_eq!(
                            build_at(&t, at, Return::Ret),
                            Err(BuildError::Unmovable {
                                offset: off,
                                what: Unmovable::Thunk
                            }),
                            "{insn:02x?} to {target:#x} at +{off:#x}"
                        );
                    }
                    // Without the thunk ranges the same template builds.
                    let plain = Template { thunks: &[], ..t };
                    assert!(build_at(&plain, 0xffff_ffff_a000_0000, Return::Ret).is_ok());
                }
            }
        }
    }
    // Just past each range is not a thunk: relocated like any other target.
    for target in [RETPOLINE + 16 * 32, RET_THUNK + 1, RETPOLINE - 1] {
        let insn = branch_to(&[0xe8, 0, 0, 0, 0], target, 3, 0);
        let (code, op_ptr, call, off) = with_insn(3, 0, &insn);
        let ranges = th(&thunks);
        let t = Template {
            thunks: &ranges,
            ..synth(&code, op_ptr, call)
        };
        let at = 0xffff_ffff_a000_0000;
        let (out, _) = build_at(&t, at, Return::Ret).unwrap();
        let n = decode_all(&out[off..off + 5], at + off as u64);
        assert_eq!(n[0].near_branch_target(), target);
    }
}

/// A rel8 branch into a thunk that happens to be within reach is still refused.
#[test]
fn short_branches_into_thunks_are_refused() {
    let mut s = Synth::new();
    s.raw(&[0x90; 4]);
    let (mut code, op_ptr, call) = s.finish();
    let jmp8 = code.len();
    code.extend([0xeb, 0x10]); // jmp end+16
    let end = SYNTH_ADDR + code.len() as u64;
    let thunks = vec![end + 16..end + 48, RET_THUNK..RET_THUNK + 1];
    let ranges = th(&thunks);
    let t = Template {
        thunks: &ranges,
        ..synth(&code, op_ptr, call)
    };
    assert_eq!(
        build_at(&t, SYNTH_ADDR, Return::Ret),
        Err(BuildError::Unmovable {
            offset: jmp8,
            what: Unmovable::Thunk
        })
    );
}

/// The real templates hold none of what the builder refuses: no return, no indirect branch,
/// and no branch that leaves the template except the tracer call and the direct-call jnz,
/// which the builder rewrites. So they build even when everything outside the template
/// counts as a thunk.
#[test]
fn real_templates_hold_nothing_unmovable() {
    for f in fixtures() {
        for regs in [false, true] {
            let t = template(&f, regs);
            let mut off = 0;
            for i in decode_all(t.code, t.addr) {
                let what = format!("{} regs={regs} +{off:#x} {i}", f.name);
                assert_ne!(i.mnemonic(), Mnemonic::Ret, "{what}");
                assert!(
                    !matches!(
                        i.flow_control(),
                        FlowControl::Return
                            | FlowControl::IndirectBranch
                            | FlowControl::IndirectCall
                    ),
                    "{what}"
                );
                assert_eq!(
                    flow(&Iced.decode(&t.code[off..]).unwrap()),
                    Kind::Other,
                    "{what}"
                );
                if is_rel_branch(&i) && off != t.call && Some(off) != t.jnz {
                    assert!(inside(&t, i.near_branch_target()), "{what}");
                }
                off += i.len();
            }
            let end = t.addr + t.code.len() as u64;
            let mut thunks = vec![0..t.addr, end + 1..u64::MAX];
            if let Some(&r) = f.syms.get("__x86_return_thunk") {
                thunks.push(r..r + 1);
            }
            for ranges in [&thunks[..], &thunks[2..]] {
                let ranges = th(ranges);
                let tt = Template {
                    thunks: &ranges,
                    ..t
                };
                for at in slot_addresses(&t) {
                    let (out, layout) = build_at(&tt, at, Return::Ret)
                        .unwrap_or_else(|e| panic!("{} regs={regs} at {at:#x}: {e:?}", f.name));
                    check_trampoline(&tt, at, Return::Ret, &out, layout);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// The builder through the `Decoder` trait: it has no opcode table of its own.

/// [`Iced`], recording what the builder asks, and optionally calling every return an
/// ordinary instruction.
struct Recording {
    decoded: std::cell::RefCell<Vec<usize>>,
    relocated: std::cell::RefCell<Vec<(u64, u64)>>,
    hide_returns: bool,
}

impl Recording {
    fn new(hide_returns: bool) -> Self {
        Recording {
            decoded: Default::default(),
            relocated: Default::default(),
            hide_returns,
        }
    }
}

impl execslot_host::decode::Decoder for Recording {
    fn decode(&self, code: &[u8]) -> Result<Insn, DecodeError> {
        self.decoded.borrow_mut().push(code.len());
        let mut i = Iced.decode(code)?;
        if self.hide_returns && i.kind == Kind::Ret {
            i.kind = Kind::Other;
        }
        Ok(i)
    }

    fn relocate(
        &self,
        code: &mut [u8],
        from: u64,
        to: u64,
    ) -> Result<(), execslot_host::decode::NoMemory> {
        self.relocated.borrow_mut().push((from, to));
        Iced.relocate(code, from, to)
    }
}

fn build_with_decoder(
    d: &impl execslot_host::decode::Decoder,
    t: &Template<'_>,
    at: u64,
) -> Result<Vec<u8>, BuildError> {
    let mut out = vec![0u8; Layout::new(t.code.len()).size];
    build(d, t, at, OPS, FUNC, Return::Ret, &mut out).map(|_| out)
}

/// A `ret` and a `jmp *%rax` in the copied range are refused on what the decoder says,
/// before anything is relocated; a decoder that called the `ret` something else would
/// get it built.
#[test]
fn refusals_go_through_the_decoder() {
    let at = 0xffff_ffff_a000_0040;
    for (insn, what) in [
        (&[0xc3][..], Unmovable::Ret),
        (&[0xff, 0xe0][..], Unmovable::Indirect),
    ] {
        let (code, op_ptr, call, off) = with_insn(3, 13, insn);
        let t = synth(&code, op_ptr, call);
        let d = Recording::new(false);
        assert_eq!(
            build_with_decoder(&d, &t, at),
            Err(BuildError::Unmovable { offset: off, what })
        );
        // Every instruction up to the refused one was decoded, none was relocated.
        assert!(d.decoded.borrow().len() >= 5);
        assert!(d.relocated.borrow().is_empty());
    }
    let (code, op_ptr, call, _) = with_insn(3, 13, &[0xc3]);
    let t = synth(&code, op_ptr, call);
    let d = Recording::new(true);
    assert!(build_with_decoder(&d, &t, at).is_ok());
    assert_eq!(*d.relocated.borrow(), [(SYNTH_ADDR, at)]);
}

/// The need_reloc() edge through the trait: a rel32 and a rel8 branch and a RIP-relative
/// operand to the template's end stay relative (they reach the trampoline's return, at
/// the same offset), ones to one byte past the end keep their absolute target.
#[test]
fn the_template_end_is_inside_through_the_decoder() {
    let mut s = Synth::new();
    let jmp32 = s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::End);
    let jne8 = s.rel(&[0x75, 0], 1, 1, To::End);
    let lea = s.rel(&[0x48, 0x8d, 0x05, 0, 0, 0, 0], 3, 4, To::End);
    let past = s.raw(&[0xe8, 0, 0, 0, 0]);
    s.raw(&[0x48, 0x89, 0xe5]);
    let (mut code, op_ptr, call) = s.finish();
    let len = code.len() as u64;
    // call end+1: just outside.
    code[past + 1..past + 5].copy_from_slice(&((len + 1 - (past as u64 + 5)) as u32).to_le_bytes());
    let t = synth(&code, op_ptr, call);
    for at in slot_addresses(&t) {
        let d = Recording::new(false);
        let out = build_with_decoder(&d, &t, at).unwrap_or_else(|e| panic!("{at:#x}: {e:?}"));
        assert_eq!(*d.relocated.borrow(), [(t.addr, at)]);
        let one = |off: usize| {
            Decoder::with_ip(64, &out[off..], at + off as u64, DecoderOptions::NONE).decode()
        };
        assert_eq!(one(jmp32).near_branch_target(), at + len);
        assert_eq!(one(jne8).near_branch_target(), at + len);
        assert_eq!(one(lea).ip_rel_memory_address(), at + len);
        assert_eq!(one(past).near_branch_target(), t.addr + len + 1);
        // At the end: the trampoline's own return.
        assert_eq!(out[len as usize], 0xc3);
    }
}

// ---------------------------------------------------------------------------------------
// What text_poke_apply_relocation() does besides relocating, and what the builder refuses
// so that it cannot go wrong.

/// Runs of NOPs become one NOP, as text_poke_apply_relocation() leaves them (and as
/// alternatives left them in the live template): the mitigations templates hold two
/// 9-byte CALL_DEPTH_ACCOUNT sites each, 9 single-byte NOPs in vmlinux.
#[test]
fn runs_of_nops_become_one_nop() {
    let f = fixtures()
        .into_iter()
        .find(|f| f.config["CONFIG_MITIGATION_CALL_DEPTH_TRACKING"] == "y")
        .unwrap();
    const NOP9: [u8; 9] = [0x2e, 0x0f, 0x1f, 0x84, 0, 0, 0, 0, 0];
    for regs in [false, true] {
        let t = template(&f, regs);
        let runs: Vec<usize> = (0..t.code.len() - 9)
            .filter(|&o| t.code[o..o + 9] == [0x90; 9])
            .collect();
        assert_eq!(runs.len(), 2, "regs={regs}: {runs:x?}");
        let (out, _) = build_at(&t, 0xffff_ffff_a000_0000, Return::Ret).unwrap();
        for o in runs {
            assert_eq!(out[o..o + 9], NOP9, "regs={regs} +{o:#x}");
        }
    }
}

/// With call-depth tracking (`retbleed=stuff`) alternatives patch each CALL_DEPTH_ACCOUNT
/// site of the live template into `sarq $5, %gs:__x86_call_depth(%rip)`: the trampoline
/// relocates exactly those two %gs-relative operands, which keep their per-CPU address;
/// without it, it relocates nothing (the op_ptr load and the call are rewritten, the jnz
/// becomes a NOP).
#[test]
fn live_templates_with_and_without_call_depth_tracking() {
    for f in fixtures() {
        for regs in [false, true] {
            let t = template(&f, regs);
            let at = 0xffff_ffff_a012_3450;
            let (out, layout) = build_at(&t, at, Return::Ret).unwrap();
            assert_eq!(check_trampoline(&t, at, Return::Ret, &out, layout), 0);
            if f.config["CONFIG_MITIGATION_CALL_DEPTH_TRACKING"] != "y" {
                continue;
            }
            let depth = f.syms["__x86_call_depth"];
            let mut live = t.code.to_vec();
            let sites: Vec<usize> = (0..live.len() - 9)
                .filter(|&o| live[o..o + 9] == [0x90; 9])
                .collect();
            for &o in &sites {
                let next = t.addr + o as u64 + 9;
                let disp = (depth.wrapping_sub(next) as i64) as i32;
                live[o..o + 9].copy_from_slice(&[0x65, 0x48, 0xc1, 0x3d, 0, 0, 0, 0, 5]);
                live[o + 4..o + 8].copy_from_slice(&disp.to_le_bytes());
            }
            let tl = Template { code: &live, ..t };
            for at in slot_addresses(&tl) {
                let (out, layout) = build_at(&tl, at, Return::Ret).unwrap();
                assert_eq!(check_trampoline(&tl, at, Return::Ret, &out, layout), 2);
                for &o in &sites {
                    let n = decode_all(&out[o..o + 9], at + o as u64);
                    assert_eq!(n[0].segment_prefix(), Register::GS);
                    assert_eq!(n[0].ip_rel_memory_address(), depth);
                }
            }
        }
    }
}

/// A branch into the middle of a run of NOPs would land inside the NOP or INT3 that
/// text_poke_apply_relocation() makes of the run: refused. One to the run's first byte is
/// fine.
#[test]
fn branches_into_runs_of_nops_are_refused() {
    for (first, pad) in [(false, 3), (false, 20), (true, 3), (true, 20)] {
        let mut s = Synth::new();
        let jmp = s.raw(&[0xeb, 0]);
        // Not a NOP: a `jmp .+2` would be one, and part of the run.
        s.raw(&[0x48, 0x89, 0xe5]);
        let run = s.raw(&vec![0x90; pad]);
        s.raw(&[0x48, 0x89, 0xe5]);
        let (mut code, op_ptr, call) = s.finish();
        let to = if first { run } else { run + 1 };
        code[jmp + 1] = (to - (jmp + 2)) as u8;
        let t = synth(&code, op_ptr, call);
        for at in slot_addresses(&t) {
            let r = build_at(&t, at, Return::Ret);
            if first {
                let (out, layout) = r.unwrap();
                check_trampoline(&t, at, Return::Ret, &out, layout);
            } else {
                assert_eq!(r, Err(BuildError::NotRelocatable { offset: jmp }), "{pad}");
            }
        }
    }
}

/// `loop`, `jrcxz` and `xbegin` are not relocated by text_poke_apply_relocation(): one
/// that leaves the template is refused even where it would reach; inside, it is fine.
#[test]
fn unrelocated_branches_leaving_the_template_are_refused() {
    for (bytes, disp, size) in [
        (&[0xe2, 0][..], 1, 1),                // loop
        (&[0xe3, 0][..], 1, 1),                // jrcxz
        (&[0xc7, 0xf8, 0, 0, 0, 0][..], 2, 4), // xbegin
    ] {
        for to in [To::BeforeStart, To::End] {
            let mut s = Synth::new();
            let off = s.rel(bytes, disp, size, to);
            s.raw(&[0x48, 0x89, 0xe5]);
            let (code, op_ptr, call) = s.finish();
            let t = synth(&code, op_ptr, call);
            // Close enough for the rel8 to reach its old target from the copy.
            let at = SYNTH_ADDR + 0x10;
            let r = build_at(&t, at, Return::Ret);
            match to {
                To::End => assert!(r.is_ok(), "{bytes:02x?}: {r:?}"),
                _ => assert_eq!(
                    r,
                    Err(BuildError::NotRelocatable { offset: off }),
                    "{bytes:02x?}"
                ),
            }
        }
    }
}

/// text_poke_apply_relocation() shortens a `jmp` rel32 to a `jmp` rel8 where its
/// displacement plus the move distance fits a byte, also when the jump stays inside and
/// needs no relocation, so to the wrong target: the builder refuses such a jump when the
/// trampoline lies that close to its template, and with the distance zero the
/// shortened jump is right.
#[test]
fn jmp32_that_would_be_shortened_wrongly_is_refused() {
    let mut s = Synth::new();
    let jmp = s.rel(&[0xe9, 0, 0, 0, 0], 1, 4, To::End);
    s.raw(&[0x48, 0x89, 0xe5]);
    let (code, op_ptr, call) = s.finish();
    let t = synth(&code, op_ptr, call);
    assert_eq!(
        build_at(&t, SYNTH_ADDR + 0x40, Return::Ret),
        Err(BuildError::NotRelocatable { offset: jmp })
    );
    let (out, layout) = build_at(&t, SYNTH_ADDR, Return::Ret).unwrap();
    assert_eq!(out[jmp], 0xeb);
    check_trampoline(&t, SYNTH_ADDR, Return::Ret, &out, layout);
    // Far away, the jump keeps its rel32 and reaches the trampoline's return.
    for at in slot_addresses(&t) {
        let (out, layout) = build_at(&t, at, Return::Ret).unwrap();
        assert_eq!(out[jmp], 0xe9);
        check_trampoline(&t, at, Return::Ret, &out, layout);
    }
}
