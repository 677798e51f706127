"""Reading a built vmlinux: its symbols (`nm`), bytes of its sections (ELF), and its call
graph from `objdump -d` (the panics reachable from functions that must not panic, calls
out of leaf functions, where a kprobe can count large-page splits).

Pure functions on the tools' output (the callers run nm and objdump) and on the file's
bytes; text_digest() alone opens the file, to map it.
"""

import hashlib
import mmap
import re
import struct

from .util import WorkbenchError


def parse_nm(nm_text):
    """Symbol -> address from `nm` output; the first of several same-named symbols wins."""
    syms = {}
    for line in nm_text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms.setdefault(parts[2], int(parts[0], 16))
    return syms


def _elf_sections(data):
    """(sh_name, sh_type, sh_addr, sh_offset, sh_size) of each section header of an ELF64
    little-endian file, and the offset of its section name table."""
    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        raise WorkbenchError('not a 64-bit little-endian ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from('<HHH', data, 0x3a)
    # sh_name, sh_type, sh_flags (skipped), sh_addr, sh_offset, sh_size
    heads = [struct.unpack_from('<IIQQQQ', data, shoff + i * shentsize) for i in range(shnum)]
    return [(n, t, a, o, z) for n, t, _, a, o, z in heads], heads[shstrndx][4]


def elf_read(data, addr, size):
    """Bytes [addr, addr + size) of an ELF64 little-endian file's PROGBITS sections."""
    for _, sh_type, sh_addr, sh_offset, sh_size in _elf_sections(data)[0]:
        if sh_type == 1 and sh_addr <= addr and addr + size <= sh_addr + sh_size:
            off = sh_offset + addr - sh_addr
            return data[off:off + size]
    raise WorkbenchError(f'no section holds {size} bytes at {addr:#x}')


def elf_section(data, name):
    """The bytes of the section `name` of an ELF64 little-endian file (bytes, or an mmap
    of the file)."""
    sections, strtab = _elf_sections(data)
    for sh_name, sh_type, _, sh_offset, sh_size in sections:
        at = strtab + sh_name
        end = data.find(b'\0', at)
        if end < 0:
            raise WorkbenchError(f'section name at {at:#x} runs past the end of the file')
        if data[at:end].decode(errors='replace') == name:
            # SHT_NOBITS holds no bytes in the file.
            return b'' if sh_type == 8 else data[sh_offset:sh_offset + sh_size]
    raise WorkbenchError(f'no section {name}')


def text_digest(path):
    """A short digest of the `.text` section of the ELF file `path`: two builds with the
    same digest run the same code (the banner, with its build time, lies in .rodata).
    Mapped, not read: a vmlinux with debug information runs to hundreds of megabytes."""
    try:
        with open(path, 'rb') as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return hashlib.sha256(elf_section(m, '.text')).hexdigest()[:12]
    except (OSError, ValueError, struct.error, WorkbenchError) as e:
        # ValueError: an empty file cannot be mapped; struct.error: headers cut short.
        raise WorkbenchError(f'{path}: {e}') from None


# ---------------------------------------------------------------------------
# No panic on the paths that must not panic

# A call to one of these, directly or through Rust functions, is a reachable panic:
# core's panicking module (overflow checks, bounds checks, explicit panics), the
# unwrap/expect failures, slice index failures and the panic handler itself.
PANIC_RE = re.compile(r'panicking|unwrap_failed|expect_failed|_index_len_fail|'
                      r'index_order_fail|rust_begin_unwind|panic_fmt')

_FUNC_RE = re.compile(r'^[0-9a-f]+ <([^>]+)>:$')
_CALL_RE = re.compile(r'\s(?:call|jmp)\s+[0-9a-f]+ <([^>+]+)(?:\+0x[0-9a-f]+)?>')


def call_graph(objdump_text):
    """Direct calls and jumps of each function in `objdump -d` output: {name: {callee}}.
    Jumps inside a function (to name+offset) are dropped; a jump to another function's
    start (a tail call) counts as a call."""
    graph = {}
    cur = None
    for line in objdump_text.splitlines():
        m = _FUNC_RE.match(line)
        if m:
            cur = graph.setdefault(m.group(1), set())
            name = m.group(1)
            continue
        if cur is None:
            continue
        m = _CALL_RE.search(line)
        if m and m.group(1) != name and not re.search(r'<[^>]+\+0x', line):
            cur.add(m.group(1))
    return graph


def panic_paths(graph, roots):
    """For each root, a call chain to a panic, or None: Rust functions (mangled `_R`)
    are followed, C functions are not (they do not panic the Rust way)."""
    found = {}
    for root in roots:
        if root not in graph:
            raise WorkbenchError(f'{root}: no such function in the disassembly')
        seen = {root}
        stack = [(root, [root])]
        found[root] = None
        while stack and found[root] is None:
            fn, chain = stack.pop()
            for callee in sorted(graph.get(fn, ())):
                if PANIC_RE.search(callee):
                    found[root] = chain + [callee]
                    break
                if callee.startswith('_R') and callee not in seen:
                    seen.add(callee)
                    stack.append((callee, chain + [callee]))
    return found


# Calls a function that kprobes must not probe may make without leaving the blacklist:
# the return and indirect-branch thunks, which are themselves noinstr.
LEAF_ALLOWED_RE = re.compile(r'^__x86_(return_thunk|indirect_thunk_\w+|indirect_its_thunk_\w+)$')


def non_leaf_calls(graph, roots):
    """For each root, the functions it calls or tail-calls, other than the thunks: a root
    in `_kprobe_blacklist` that calls nothing is covered entirely by its entry (kprobes
    blacklists a function, not what it calls), and untraced (no call to __fentry__)."""
    found = {}
    for root in roots:
        if root not in graph:
            raise WorkbenchError(f'{root}: no such function in the disassembly')
        found[root] = sorted(c for c in graph[root] if not LEAF_ALLOWED_RE.match(c))
    return found


def split_probe_offset(objdump_text, func):
    """"func+0xOFF" of the one call of flush_tlb_all() in `func`'s disassembly (objdump -d
    --disassemble=func): the end of __split_large_page(), inlined there. ValueError if
    the function is missing or calls it other than once."""
    start = None
    calls = []
    for line in objdump_text.splitlines():
        m = re.match(r'^([0-9a-f]+) <([^>]+)>:$', line.strip())
        if m:
            start = int(m.group(1), 16) if m.group(2) == func else None
            continue
        m = re.match(r'^\s*([0-9a-f]+):\s+call\s+[0-9a-f]+ <flush_tlb_all>$', line)
        if m and start is not None:
            calls.append(int(m.group(1), 16) - start)
    if len(calls) != 1:
        raise ValueError(f'{func} calls flush_tlb_all() {len(calls)} times, not once: '
                         'cannot count the splits of large mappings')
    return f'{func}+{calls[0]:#x}'
