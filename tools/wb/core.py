"""Pure logic of the workbench: series parsing, config verification, log analysis.

Nothing here runs a command or touches the cache; everything takes text and returns
values or raises WorkbenchError, so tools/wb/test_core.py can test it on fixtures.
"""

import json
import re
import struct
from dataclasses import dataclass


class WorkbenchError(Exception):
    """An error the user must act on; printed without a traceback, exit status 1."""


# ---------------------------------------------------------------------------
# patches/series

@dataclass
class Series:
    patches: list          # file names, in order
    package_version: str   # linux-source-7.3 version last exported against, or None


SERIES_VERSION_RE = re.compile(r'^#\s*linux-source-7\.3\s+(\S+)\s*$')
PATCH_NAME_RE = re.compile(r'^\d{4}-[A-Za-z0-9._-]+\.patch$')


def parse_series(text, present_files):
    """Parse patches/series against the *.patch files present in patches/.

    Blank lines and '#' comments are ignored; a comment '# linux-source-7.3 VERSION'
    records the package version. Every entry must name an existing file, once; every
    NNNN-*.patch file (other than the cover letter 0000-*) must be listed.
    """
    patches = []
    version = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith('#'):
            m = SERIES_VERSION_RE.match(line)
            if m:
                version = m.group(1)
            continue
        if len(line.split()) != 1:
            raise WorkbenchError(f'patches/series:{lineno}: expected one file name, got {line!r}')
        if not PATCH_NAME_RE.match(line):
            raise WorkbenchError(f'patches/series:{lineno}: {line!r} is not a NNNN-name.patch file')
        if line in patches:
            raise WorkbenchError(f'patches/series:{lineno}: {line} is listed twice')
        if line not in present_files:
            raise WorkbenchError(f'patches/series:{lineno}: {line} is listed but patches/{line} does not exist')
        patches.append(line)
    unlisted = sorted(f for f in present_files
                      if f.endswith('.patch') and not f.startswith('0000-') and f not in patches)
    if unlisted:
        raise WorkbenchError('patches/ has files not in patches/series: ' + ', '.join(unlisted))
    return Series(patches, version)


def format_series(patches, package_version):
    lines = ['# Applied with `git am` in this order onto the base tree from Debian\'s',
             '# linux-source-7.3 package (tools/workbench source). Last exported against:',
             f'# linux-source-7.3 {package_version}']
    return '\n'.join(lines + list(patches)) + '\n'


# ---------------------------------------------------------------------------
# Kconfig fragments

CONFIG_SET_RE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=(.*)$')
CONFIG_UNSET_RE = re.compile(r'^# (CONFIG_[A-Za-z0-9_]+) is not set$')


def parse_config(text):
    """Map CONFIG_X -> value ('n' for '# CONFIG_X is not set'); last one wins."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = CONFIG_SET_RE.match(line)
        if m:
            values[m.group(1)] = m.group(2)
            continue
        m = CONFIG_UNSET_RE.match(line)
        if m:
            values[m.group(1)] = 'n'
    return values


def verify_config(fragments, dotconfig_text):
    """Return a list of 'CONFIG_X: asked y, got n' for every option Kconfig dropped.

    fragments: list of (name, text), later fragments override earlier ones.
    """
    wanted = {}
    origin = {}
    for name, text in fragments:
        for key, val in parse_config(text).items():
            wanted[key] = val
            origin[key] = name
    have = parse_config(dotconfig_text)
    problems = []
    for key in sorted(wanted):
        want = wanted[key]
        got = have.get(key, 'n')
        if want != got:
            problems.append(f'{key}: {origin[key]} asks {want}, .config has {got}')
    return problems


# gcc: "kernel/foo.c:12:3: warning: ..."; rustc: "warning: unused import: ..."; ld/objtool.
WARNING_RE = re.compile(r'(^|: )warning: ', re.I)


def compiler_warnings(build_log):
    """Lines of a kbuild log that report a warning."""
    return [ln.strip() for ln in build_log.splitlines()
            if WARNING_RE.search(ln) and not ln.lstrip().startswith(('warning: 1 warning',))]


# ---------------------------------------------------------------------------
# Console log analysis

# Each is a sign of a kernel bug; a boot whose log has one fails.
SPLAT_PATTERNS = [
    ('panic', re.compile(r'Kernel panic - not syncing')),
    ('oops', re.compile(r'\bOops: |general protection fault|BUG: unable to handle')),
    ('bug', re.compile(r'\bBUG: |kernel BUG at')),
    ('warning', re.compile(r'WARNING: |-+\[ cut here \]-+')),
    ('lockdep', re.compile(r'possible (recursive|circular) locking|inconsistent lock state|'
                           r'suspicious RCU usage|lock held when returning')),
    ('hung task', re.compile(r'INFO: task .* blocked for more than')),
    ('rcu stall', re.compile(r'rcu_\w+ detected stalls|rcu: INFO: ')),
    ('sanitizer', re.compile(r'\b(UBSAN|KASAN|KCSAN|KFENCE): ')),
    ('memory leak', re.compile(r'kmemleak: \d+ new suspected memory leaks')),
    ('ftrace bug', re.compile(r'ftrace faulted|ftrace failed to modify|ftrace record flags')),
    ('W+X', re.compile(r'x86/mm: Found insecure W\+X mapping')),
]

CONSOLE_PREFIX_RE = re.compile(r'^\[\s*\d+\.\d+\]\s?')


def strip_console_prefix(line):
    return CONSOLE_PREFIX_RE.sub('', line.rstrip('\r\n'))


def find_splats(log_text):
    """Return [(kind, line)] for every line that shows a kernel bug."""
    found = []
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw)
        for kind, pat in SPLAT_PATTERNS:
            if pat.search(line):
                found.append((kind, line))
                break
    return found


GUEST_EXIT_RE = re.compile(r'^WB-GUEST-EXIT (\d+)$')


def guest_exit_status(log_text):
    """The guest command's exit status, or None if it never finished."""
    status = None
    for raw in log_text.splitlines():
        m = GUEST_EXIT_RE.match(strip_console_prefix(raw))
        if m:
            status = int(m.group(1))
    return status


@dataclass
class Result:
    name: str
    ok: object      # True, False, or None for a test the kernel itself skipped
    why: str = ''

    def line(self):
        word = {True: 'PASS', False: 'FAIL', None: 'SKIP'}[self.ok]
        return f'{word} {self.name}' + (f': {self.why}' if self.why else '')


# ftrace startup self tests (kernel/trace/trace_selftest.c, trace_events.c, trace_kprobe.c):
#   "Testing tracer function: PASSED", "Testing dynamic ftrace ops #1: (1 0 1 1 0) ... PASSED",
#   "Testing event sched_switch: OK", "Testing kprobe tracing: OK", "... FAILED!" / "FAILED"
STARTUP_TEST_RE = re.compile(r'^(?:[a-z_]+: )?(Testing [^:]+?|Running tests? on [^:]+?):(.*)$')
STARTUP_OK_RE = re.compile(r'\b(PASSED|OK)\s*$')
STARTUP_FAIL_RE = re.compile(r'FAIL|[Ee]rror|BUG')


def parse_startup_tests(log_text):
    """Results of the ftrace startup self tests printed on the console.

    A test whose line has no verdict (the kernel died in it) counts as failed.
    """
    results = []
    seen = {}
    lines = [strip_console_prefix(raw) for raw in log_text.splitlines()]
    for i, line in enumerate(lines):
        m = STARTUP_TEST_RE.match(line)
        if not m:
            continue
        name, rest = m.group(1).strip(), m.group(2).strip()
        if name.startswith('Running tests'):
            continue
        # The event tests run twice, the second time with the function tracer on.
        seen[name] = seen.get(name, 0) + 1
        if seen[name] > 1:
            name = f'{name} (run {seen[name]})'
        if STARTUP_OK_RE.search(rest):
            results.append(Result(f'startup: {name}', True))
            continue
        if STARTUP_FAIL_RE.search(rest):
            results.append(Result(f'startup: {name}', False, rest))
            continue
        # The verdict can come on a later line when other messages interleave.
        verdict = None
        for later in lines[i + 1:i + 40]:
            if STARTUP_TEST_RE.match(later):
                break
            # e.g. "(3 3 5 0 567605) PASSED" after the counters of "dynamic ftrace ops".
            if STARTUP_OK_RE.search(later):
                verdict = True
                break
            if STARTUP_FAIL_RE.search(later):
                verdict = False
                break
        if verdict is None:
            results.append(Result(f'startup: {name}', False, 'no verdict (kernel died or hung in it?)'))
        else:
            results.append(Result(f'startup: {name}', verdict, '' if verdict else rest))
    return results


GUEST_TEST_RE = re.compile(r'^WB-TEST (PASS|FAIL) (.+?)(?: \| (.*))?$')


def parse_guest_tests(log_text, prefix='guest'):
    """Lines 'WB-TEST PASS name' / 'WB-TEST FAIL name | why' printed by guest scripts."""
    results = []
    for raw in log_text.splitlines():
        m = GUEST_TEST_RE.match(strip_console_prefix(raw))
        if m:
            results.append(Result(f'{prefix}: {m.group(2).strip()}', m.group(1) == 'PASS',
                                  (m.group(3) or '').strip()))
    return results


def kunit_results_from_json(text):
    """Flatten the JSON of `kunit.py parse --json` into one Result per test case."""
    data = json.loads(text)
    results = []

    def walk(node, path):
        name = node.get('name') or ''
        sub = node.get('sub_groups') or []
        cases = node.get('test_cases') or []
        here = path + [name] if name else path
        for case in cases:
            status = case.get('status', '')
            full = '.'.join(here + [case.get('name', '?')])
            if status == 'SKIP':
                # Listed, but counted neither as passed nor as failed.
                results.append(Result(f'kunit: {full}', None, 'skipped'))
            else:
                results.append(Result(f'kunit: {full}', status == 'PASS',
                                      '' if status == 'PASS' else status.lower()))
        for g in sub:
            walk(g, here)

    tests = data.get('test_cases') or []
    groups = data.get('sub_groups') or []
    if not tests and not groups:
        raise WorkbenchError('kunit.py parse found no KUnit test in the console log')
    walk({'name': '', 'sub_groups': groups, 'test_cases': tests}, [])
    return results


def summary_line(results):
    passed = sum(1 for r in results if r.ok is True)
    failed = sum(1 for r in results if r.ok is False)
    return f'{passed} passed, {failed} failed'


# ---------------------------------------------------------------------------
# ftrace template fixtures for the host tests of the trampoline builder

TEMPLATE_SYMBOLS = (
    'ftrace_caller', 'ftrace_caller_op_ptr', 'ftrace_call', 'ftrace_caller_end',
    'ftrace_regs_caller', 'ftrace_regs_caller_op_ptr', 'ftrace_regs_call',
    'ftrace_regs_caller_jmp', 'ftrace_regs_caller_end',
    'function_trace_op', 'ftrace_stub',
)
# Present only in some configurations.
OPTIONAL_TEMPLATE_SYMBOLS = ('__x86_return_thunk', 'its_return_thunk', '__x86_call_depth')
TEMPLATE_CONFIGS = ('CONFIG_FRAME_POINTER', 'CONFIG_MITIGATION_RETPOLINE',
                    'CONFIG_MITIGATION_RETHUNK', 'CONFIG_MITIGATION_CALL_DEPTH_TRACKING',
                    'CONFIG_MITIGATION_SLS', 'CONFIG_MITIGATION_ITS')


def elf_read(data, addr, size):
    """Bytes [addr, addr + size) of an ELF64 little-endian file's PROGBITS sections."""
    if data[:4] != b'\x7fELF' or data[4] != 2 or data[5] != 1:
        raise WorkbenchError('not a 64-bit little-endian ELF file')
    shoff, = struct.unpack_from('<Q', data, 0x28)
    shentsize, shnum = struct.unpack_from('<HH', data, 0x3a)
    for i in range(shnum):
        sh_type, _, sh_addr, sh_offset, sh_size = struct.unpack_from(
            '<IQQQQ', data, shoff + i * shentsize + 4)
        if sh_type == 1 and sh_addr <= addr and addr + size <= sh_addr + sh_size:
            off = sh_offset + addr - sh_addr
            return data[off:off + size]
    raise WorkbenchError(f'no section holds {size} bytes at {addr:#x}')


def parse_nm(nm_text):
    """Symbol -> address from `nm` output; the first of several same-named symbols wins."""
    syms = {}
    for line in nm_text.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms.setdefault(parts[2], int(parts[0], 16))
    return syms


def template_fixture(nm_text, elf_data, dotconfig_text, label):
    """The fixture text for tools/host/fixtures/templates/<label>.txt."""
    syms = parse_nm(nm_text)
    missing = [s for s in TEMPLATE_SYMBOLS if s not in syms]
    if missing:
        raise WorkbenchError(f'vmlinux lacks {", ".join(missing)} (is FUNCTION_TRACER on?)')
    config = parse_config(dotconfig_text)
    out = [f'# ftrace templates of vmlinux, config {label}; regenerate with',
           '# `tools/workbench fixtures` after `tools/workbench build --config ' + label + '`.']
    for c in TEMPLATE_CONFIGS:
        out.append(f'config {c} {config.get(c, "n")}')
    for s in TEMPLATE_SYMBOLS + OPTIONAL_TEMPLATE_SYMBOLS:
        if s in syms:
            out.append(f'sym {s} {syms[s]:016x}')
    for start, end in (('ftrace_caller', 'ftrace_caller_end'),
                       ('ftrace_regs_caller', 'ftrace_regs_caller_end')):
        code = elf_read(elf_data, syms[start], syms[end] - syms[start])
        out.append(f'code {start} {code.hex()}')
    return '\n'.join(out) + '\n'


# ---------------------------------------------------------------------------
# bench: trampoline memory (tools/guest/tramp-mem.sh)

MEM_RE = re.compile(r'^(WB-MEM|WB-MEM-BACK|WB-MEM-ABS) n=(\d+)((?: \w+=-?\d+)+)\s*$')
MEM_KEYS = ('tramps', 'pages', 'slot_pages', 'slots', 'slot_bytes', 'vmalloc_exec',
            'empty_pages')


def _kv(text, line, keys):
    vals = {k: int(v) for k, v in (kv.split('=') for kv in text.split())}
    missing = [k for k in keys if k not in vals]
    if missing:
        raise WorkbenchError(f'guest line lacks {", ".join(missing)}: {line}')
    return vals


def _guest_lines(log_text, error=None):
    """The console lines without their printk prefix; a line starting with `error` (the
    guest script's own error report) raises WorkbenchError."""
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw).strip()
        if error and line.startswith(error):
            raise WorkbenchError(f'guest: {line}')
        yield line


def _parse_tagged(log_text, regex, keys, error=None):
    """{key: {name: value}} from the lines that `regex` matches: its groups but the last
    make the key (one group: an int; more: (str, int)), the last holds the values."""
    out = {}
    for line in _guest_lines(log_text, error):
        m = regex.match(line)
        if m:
            g = m.groups()
            key = int(g[0]) if len(g) == 2 else (g[0], int(g[1]))
            out[key] = _kv(g[-1], line, keys)
    return out


def parse_mem_lines(log_text):
    """{n: {'held': {...}, 'back': {...}}} from the WB-MEM lines of tramp-mem.sh."""
    out = {}
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw).strip()
        if line.startswith('WB-MEM-ERROR'):
            raise WorkbenchError(f'guest: {line}')
        m = MEM_RE.match(line)
        if not m:
            continue
        vals = _kv(m.group(3), line, MEM_KEYS)
        key = {'WB-MEM': 'held', 'WB-MEM-BACK': 'back', 'WB-MEM-ABS': 'abs'}[m.group(1)]
        out.setdefault(int(m.group(2)), {})[key] = vals
    return out


def mem_rows(label, mem, tramp_code_bytes, page_size=4096):
    """Table rows (dicts) for one kernel. `held` figures are increases over the state
    before the N instances; `total` figures count every trampoline alive with them (the
    boot self tests leave some behind) and give bytes held per trampoline and packing,
    where the code of one trampoline is `tramp_code_bytes`."""
    rows = []
    for n in sorted(mem):
        held, back, tot = (mem[n].get(k) for k in ('held', 'back', 'abs'))
        if held is None or back is None or tot is None:
            raise WorkbenchError(f'{label}: no complete measurement for n={n}')
        slots = bool(tot['slots'])
        pages = tot['slot_pages'] if slots else tot['pages']
        added = held['slot_pages'] if slots else held['pages']
        total_bytes = pages * page_size
        rows.append({
            'kernel': label, 'n': n, 'trampolines': held['tramps'],
            'pages_added': added, 'bytes_added': added * page_size,
            'total_trampolines': tot['tramps'], 'total_pages': pages,
            'bytes_per_trampoline': total_bytes / tot['tramps'] if tot['tramps'] else 0.0,
            'slot_bytes_per_trampoline': (tot['slot_bytes'] / tot['slots']) if slots else None,
            'packing': tot['tramps'] * tramp_code_bytes / total_bytes if total_bytes else 0.0,
            'vmalloc_exec_added': held['vmalloc_exec'],
            # An empty page that execslot keeps for the next slot is not a leak.
            'leaked_after_removal': {k: v for k, v in back.items()
                                     if v and k != 'empty_pages'},
            'empty_pages_after_removal': back['empty_pages'],
        })
    return rows


def mem_report(rows, config, ns):
    """The text table of `bench` (trampoline memory), ending with a newline."""
    out = ['ftrace trampolines for N tracing instances, each tracing one function of its own',
           f'(config {config}; QEMU/TCG, 2 vCPUs). "added" = 4 KiB pages the N trampolines',
           'added; "all" = every trampoline alive then, with those the boot self tests left,',
           'and the pages holding them; B/tramp = bytes of those pages per trampoline;',
           'packing = trampoline code / bytes of those pages; vmalloc = growth of the',
           'execmem lines of /proc/vmallocinfo (x86 takes EXECMEM_FTRACE from 2 MiB ROX',
           'chunks, so it moves in 2 MiB steps, on both kernels). After removal, execslot',
           'keeps one empty page for the next slot: not counted as a leak, but shown.',
           '',
           f'{"N":>5} {"kernel":8} {"added":>6} {"KiB added":>9} {"all":>5} {"pages":>6} '
           f'{"B/tramp":>8} {"packing":>8} {"vmalloc KiB":>11}  leak after removal']
    for r in rows:
        out.append(f'{r["n"]:>5} {r["kernel"]:8} {r["pages_added"]:>6} '
                   f'{r["bytes_added"] / 1024:>9.1f} {r["total_trampolines"]:>5} '
                   f'{r["total_pages"]:>6} {r["bytes_per_trampoline"]:>8.1f} '
                   f'{r["packing"] * 100:>7.1f}% {r["vmalloc_exec_added"] / 1024:>11.0f}  '
                   + (', '.join(f'{k} {v}' for k, v in r['leaked_after_removal'].items())
                      or 'none')
                   + (f' ({r["empty_pages_after_removal"]:+d} empty page kept)'
                      if r['empty_pages_after_removal'] else ''))
    by = {(r['kernel'], r['n']): r for r in rows}
    out.append('')
    for n in ns:
        v, p = by.get(('vanilla', n)), by.get(('patched', n))
        if v and p and p['total_pages']:
            out.append(f'N={n}: {v["total_pages"]} pages vanilla, {p["total_pages"]} patched '
                       f'({v["total_pages"] / p["total_pages"]:.1f}x less executable memory);'
                       f' one slot = {p["slot_bytes_per_trampoline"] or 0:.0f} B')
    return '\n'.join(out) + '\n'


def replace_block(text, name, block):
    """Replace what lies between <!-- NAME-begin --> and <!-- NAME-end --> in `text`."""
    begin, end = f'<!-- {name}-begin -->', f'<!-- {name}-end -->'
    i, j = text.find(begin), text.find(end)
    if i < 0 or j < i:
        raise WorkbenchError(f'README.md has no {begin} ... {end} block')
    return text[:i + len(begin)] + '\n' + block + text[j:]


KP_RE = re.compile(r'^WB-KP tag=(\w+) round=(\d+)((?: \w+=-?\d+)+)\s*$')
KP_KEYS = ('n', 'registered', 'optimized', 'kprobe_pages', 'tramp_pages', 'exec_pages',
           'insn_bytes', 'optinsn_bytes')


def parse_kp_lines(log_text):
    """{tag: {...}} from the first round's WB-KP line of kprobe-stress.sh, per tag."""
    out = {}
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw).strip()
        m = KP_RE.match(line)
        if not m or m.group(1) in out:
            continue
        out[m.group(1)] = _kv(m.group(3), line, KP_KEYS)
    return out


def kp_report(kp):
    """Text table of the kprobes and mixed measurements: {kernel: {tag: {...}}}."""
    out = ['kprobes at function offsets ("kprobes": alone; "mix": with tracing instances',
           'alive). Pages: 4 KiB pages of kprobe slots (patched: per cache, a page shared by',
           'the insn and optinsn caches counts for both), of trampolines, and all executable',
           'pages of both (the patched kernel shares pages between them).',
           '',
           '"shared" = pages holding both a trampoline and a kprobes slot.',
           '',
           f'{"tag":8} {"kernel":8} {"kprobes":>7} {"optimized":>9} {"kprobe pg":>9} '
           f'{"tramp pg":>8} {"shared":>6} {"exec pages":>10} {"KiB":>7}']
    tags = sorted({t for k in kp.values() for t in k}, key=kp_tag_order)
    for tag in tags:
        for kernel in ('vanilla', 'patched'):
            r = kp.get(kernel, {}).get(tag)
            if not r:
                continue
            out.append(f'{tag:8} {kernel:8} {r["registered"]:>7} {r["optimized"]:>9} '
                       f'{r["kprobe_pages"]:>9} {r["tramp_pages"]:>8} '
                       f'{r.get("shared_pages", 0):>6} {r["exec_pages"]:>10} '
                       f'{r["exec_pages"] * 4:>7}')
        v, p = kp.get('vanilla', {}).get(tag), kp.get('patched', {}).get(tag)
        if v and p and p['exec_pages']:
            out.append(f'{tag}: {v["exec_pages"]} pages vanilla, {p["exec_pages"]} patched '
                       f'({v["exec_pages"] / p["exec_pages"]:.1f}x less)')
    return '\n'.join(out) + '\n'


def kp_tag_order(tag):
    """kprobes100 before kprobes1000 before mix."""
    m = re.match(r'^(\D*)(\d*)$', tag)
    return (m.group(1) == 'mix', m.group(1), int(m.group(2) or 0))


COST_RE = re.compile(r'^WB-COST what=(\w+) n=(\d+)((?: \w+=-?\d+)+)\s*$')
COST_KEYS = ('create_us', 'free_us', 'create2_us', 'free2_us', 'setmem_create',
             'setmem_free', 'flush_create', 'flush_free', 'ipi_create', 'ipi_free',
             'tlb_create', 'tlb_free', 'split_create', 'split_free', 'collapse_create',
             'collapse_free', 'tramps')
PTDUMP_RE = re.compile(r'^WB-PTDUMP what=(\w+) n=(\d+)((?: \w+=-?\d+)+)\s*$')
CYCLES_RE = re.compile(r'^WB-CYCLES n=(\d+)((?: \w+=-?\d+)+)\s*$')
CYCLES_KEYS = ('fillers', 'us', 'setmem', 'flush', 'ipi', 'tlb', 'split', 'collapse')
TEXT_RE = re.compile(r'^WB-TEXT n=(\d+)((?: \w+=-?\d+)+)\s*$')
TEXT_KEYS = ('loops', 'in_tramp_ns', 'no_text_ns', 'stack_ns', 'depth')
CALL_RE = re.compile(r'^WB-CALL rel=(\d+) regs=(\d+) run=(\d+)((?: \w+=-?\d+)+)\s*$')


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


def parse_cost_lines(log_text):
    """{(what, n): {...}} from the WB-COST lines of tramp-cost.sh."""
    return _parse_tagged(log_text, COST_RE, COST_KEYS, 'WB-COST-ERROR')


def parse_ptdump_lines(log_text):
    """{(what, n): {'pmd_kib': .., 'pte_kib': ..}} from the WB-PTDUMP lines."""
    return _parse_tagged(log_text, PTDUMP_RE, ('pmd_kib', 'pte_kib'))


def parse_text_lines(log_text):
    """{n: {...}} from the WB-TEXT lines of text-lookup.sh."""
    return _parse_tagged(log_text, TEXT_RE, TEXT_KEYS, 'WB-TEXT-ERROR')


def text_report(text):
    """Text table of {kernel: {n: {...}}} from WB-TEXT: instructions per lookup."""
    out = ['kernel_text_address() and stack traces with N ops alive, each with a',
           'trampoline (tools/guest-mod/wbtext.c: its own ops, registered first and so',
           'last in ftrace\'s list, plus N-1 ops of ftrace-ops.ko). Instructions per call',
           '(guest clock under -icount): kernel_text_address() on an address inside the',
           'first ops\' trampoline and on module data (inside no text), and a call of a',
           'traced function whose callback takes a stack trace (stack_trace_save(): the',
           'ORC unwinder walks out through the trampoline).', '',
           f'{"N":>5} {"kernel":8} {"in trampoline":>14} {"in no text":>11} '
           f'{"stack trace":>12}']
    for n in sorted({k for c in text.values() for k in c}):
        for kernel in ('vanilla', 'patched'):
            r = text.get(kernel, {}).get(n)
            if r:
                out.append(f'{n:>5} {kernel:8} {r["in_tramp_ns"] / r["loops"]:>14.1f} '
                           f'{r["no_text_ns"] / r["loops"]:>11.1f} '
                           f'{r["stack_ns"] / r["loops"]:>12.1f}')
        v, p = text.get('vanilla', {}).get(n), text.get('patched', {}).get(n)
        if v and p:
            out.append(f'{"":>5} {"v/p":8} {ratio(v["in_tramp_ns"], p["in_tramp_ns"]):>14} '
                       f'{ratio(v["no_text_ns"], p["no_text_ns"]):>11} '
                       f'{ratio(v["stack_ns"], p["stack_ns"]):>12}')
    return '\n'.join(out) + '\n'


def parse_cycles_lines(log_text):
    """{n: {...}} from the WB-CYCLES lines of tramp-cost.sh cycles."""
    return _parse_tagged(log_text, CYCLES_RE, CYCLES_KEYS)


_STAMP_RE = re.compile(r'^\[\s*(\d+)\.(\d{6})\] (.*)$')


def boot_times(log_text):
    """Nanoseconds of the guest clock, from the printk timestamps of a boot log:
    'init' (to "Run /init as init process"), 'tracer_tests' (from "Running postponed
    tracer tests:" to the first line after them that is not theirs) and 'event_tests'
    (from the first "Running tests on trace events:" to the line after "Testing ftrace
    filter"). WorkbenchError if a mark is missing."""
    lines = []
    for raw in log_text.splitlines():
        m = _STAMP_RE.match(raw.strip())
        if m:
            lines.append((int(m.group(1)) * 10**9 + int(m.group(2)) * 1000, m.group(3)))

    def first(pred, start=0):
        for i in range(start, len(lines)):
            if pred(lines[i][1]):
                return i
        raise WorkbenchError('boot log: no line ' + getattr(pred, 'what', '?'))

    def has(text):
        pred = lambda t: text in t
        pred.what = repr(text)
        return pred
    init = first(has('Run /init as init process'))
    t0 = first(has('Running postponed tracer tests:'))
    not_test = lambda t: not t.startswith(('Testing ', '('))
    not_test.what = 'after the tracer tests'
    t1 = first(not_test, t0 + 1)
    e0 = first(has('Running tests on trace events:'))
    e1 = first(has('Testing ftrace filter'), e0) + 1
    if e1 >= len(lines):
        raise WorkbenchError('boot log: nothing after "Testing ftrace filter"')
    return {'init': lines[init][0], 'tracer_tests': lines[t1][0] - lines[t0][0],
            'event_tests': lines[e1][0] - lines[e0][0]}


def parse_call_lines(log_text):
    """{(nr_ops_relevant, save_regs): [ns per call of each run]} from WB-CALL lines."""
    out = {}
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw).strip()
        m = CALL_RE.match(line)
        if m:
            vals = _kv(m.group(4), line, ('calls', 'total_ns', 'ns_per_call'))
            # The module's own ns/call is rounded down to whole ns; recompute it.
            out.setdefault((int(m.group(1)), int(m.group(2))), []).append(
                vals['total_ns'] / vals['calls'])
    return out


def spread(values):
    """(median, min, max) of a non-empty list."""
    v = sorted(values)
    n = len(v)
    med = v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2
    return med, v[0], v[-1]


def ratio(p, v):
    return f'{p / v:.2f}' if v else 'n/a'


def _per(value, n):
    """`value` (microseconds = thousands of instructions) per object, in k instructions."""
    return value / n if n else float(value)


def _drift(a, b):
    """How far the second run is from the first, as a signed percentage."""
    return f'{(b - a) / a * 100:+.1f}%' if a else 'n/a'


def cost_report(cost, ptdump=None):
    """Text table of tramp-cost.sh's figures: {kernel: {(what, n): {...}}}, and the
    mappings of {kernel: {(what, n): {...}}} from WB-PTDUMP."""
    out = ['Creating and freeing trampolines and kprobes. "instances": N tracing instances,',
           'each tracing one function (one trampoline each, plus a ring buffer and tracefs',
           'files); "ops": samples/ftrace/ftrace-ops.ko registering N ops (one trampoline',
           'each) at insmod, unregistering them at rmmod ("ops 0": the module alone, in',
           'total); "kprobes": N kprobe events added inside N functions (register_kprobe(),',
           'an instruction slot each) and removed. kI/obj = thousands of instructions per',
           'object (guest clock under -icount; waits for timers and grace periods count as',
           'their virtual time), run 1, and how far run 2 was from it. Counted in a third',
           'run with kprobe events on: set_memory = calls of set_memory_{rox,ro,rw,x,nx};',
           'flushes = calls of flush_tlb_kernel_range/flush_tlb_all and runs of',
           '__cpa_flush_tlb on each CPU; splits = large kernel mappings split by',
           'set_memory_*(); collapses = collapse_large_pages() calls that collapsed one;',
           'IPIs = function-call interrupts, TLB = TLB-shootdown interrupts, all CPUs',
           '(/proc/interrupts CAL, TLB). c/f = while creating / while freeing, in total.',
           '',
           f'{"what":9} {"N":>5} {"kernel":8} {"create kI/obj":>20} {"free kI/obj":>20} '
           f'{"set_memory":>11} {"flushes":>11} {"splits":>9} {"collapses":>9} '
           f'{"IPIs":>11} {"TLB":>9}']
    pair = lambda r, k: f'{r[k + "_create"]:>4}/{r[k + "_free"]:<4}'
    keys = sorted({k for c in cost.values() for k in c})
    for key in keys:
        n = key[1]
        for kernel in ('vanilla', 'patched'):
            r = cost.get(kernel, {}).get(key)
            if not r:
                continue
            c = f'{_per(r["create_us"], n):.1f} ({_drift(r["create_us"], r["create2_us"])})'
            f = f'{_per(r["free_us"], n):.1f} ({_drift(r["free_us"], r["free2_us"])})'
            out.append(f'{key[0]:9} {n:>5} {kernel:8} {c:>20} {f:>20} '
                       f'{pair(r, "setmem"):>11} {pair(r, "flush"):>11} '
                       f'{pair(r, "split"):>9} {pair(r, "collapse"):>9} '
                       f'{pair(r, "ipi"):>11} {pair(r, "tlb"):>9}')
        v, p = cost.get('vanilla', {}).get(key), cost.get('patched', {}).get(key)
        if v and p:
            out.append(f'{"":9} {"":>5} {"p/v":8} {ratio(p["create_us"], v["create_us"]):>20} '
                       f'{ratio(p["free_us"], v["free_us"]):>20}')
    if ptdump:
        out += ['', 'Executable mappings of the module area (where execmem puts ftrace and',
                'kprobes code) with the N objects alive, from the kernel page-table dump',
                '(debugfs page_tables/kernel): KiB mapped by 2 MiB (pmd) and by 4 KiB (pte)',
                'entries.', '',
                f'{"what":9} {"N":>5} {"vanilla pmd/pte KiB":>20} {"patched pmd/pte KiB":>20}']
        for key in sorted({k for c in ptdump.values() for k in c}):
            cells = []
            for kernel in ('vanilla', 'patched'):
                d = ptdump.get(kernel, {}).get(key)
                cells.append(f'{d["pmd_kib"]} / {d["pte_kib"]}' if d else '-')
            out.append(f'{key[0]:9} {key[1]:>5} {cells[0]:>20} {cells[1]:>20}')
    return '\n'.join(out) + '\n'


def cycles_report(cycles):
    """Text table of {kernel: {n: {...}}} from WB-CYCLES."""
    out = ['One tracing instance created and freed over and over ("fillers": instances',
           'made first so that every cycle\'s trampoline needs a page of its own; only',
           'with execslot, whose pages hold many). kI/cycle as above; the counts are',
           'totals over all cycles.', '',
           f'{"cycles":>6} {"kernel":8} {"fillers":>7} {"kI/cycle":>10} {"set_memory":>10} '
           f'{"flushes":>8} {"splits":>7} {"collapses":>9} {"IPIs":>6} {"TLB":>5}']
    for n in sorted({k for c in cycles.values() for k in c}):
        for kernel in ('vanilla', 'patched'):
            r = cycles.get(kernel, {}).get(n)
            if r:
                out.append(f'{n:>6} {kernel:8} {r["fillers"]:>7} {r["us"] / n:>10.1f} '
                           f'{r["setmem"]:>10} {r["flush"]:>8} {r["split"]:>7} '
                           f'{r["collapse"]:>9} {r["ipi"]:>6} {r["tlb"]:>5}')
    return '\n'.join(out) + '\n'


def boot_report(boots):
    """Text table of {kernel: [boot_times() of each boot]}."""
    out = ['Boot, in millions of instructions (guest clock under -icount): to "Run /init",',
           'the ftrace startup tests of the tracers and those of the trace events',
           '(CONFIG_FTRACE_STARTUP_TEST); one column per boot.', '']
    for what in ('init', 'tracer_tests', 'event_tests'):
        row = [f'{what:13}']
        meds = {}
        for kernel in ('vanilla', 'patched'):
            vals = [b[what] for b in boots.get(kernel, [])]
            meds[kernel] = vals[0] if vals else None
            row.append(f'{kernel} ' + ' '.join(f'{v / 1e6:9.3f}' for v in vals))
        if None not in meds.values():
            row.append(f'p/v {ratio(meds["patched"], meds["vanilla"])}')
        out.append('  '.join(row))
    return '\n'.join(out) + '\n'


def call_report(calls, runs_calls):
    """Text table of ns per traced call: {kernel: {(rel, regs): [ns, ...]}}."""
    out = ['Instructions per traced call, samples/ftrace/ftrace-ops.ko (nr_function_calls='
           f'{runs_calls[1]}), {runs_calls[0]} runs per case: median [min, max]. The module',
           'times its loop with ktime, which under -icount counts instructions; the loop',
           'and the traced function are included. rel = nr_ops_relevant (1: the call site',
           'calls the ops\' own trampoline, 2: the list function through ftrace_caller/',
           'ftrace_regs_caller), regs = save_regs.',
           '',
           f'{"rel":>3} {"regs":>4} {"vanilla insn/call":>24} {"patched insn/call":>24} {"p/v":>5}']
    keys = sorted({k for c in calls.values() for k in c})
    for key in keys:
        cells = []
        meds = []
        for kernel in ('vanilla', 'patched'):
            vals = calls.get(kernel, {}).get(key)
            if vals:
                med, lo, hi = spread(vals)
                meds.append(med)
                cells.append(f'{med:.1f} [{lo:.1f}, {hi:.1f}]')
            else:
                meds.append(None)
                cells.append('-')
        r = ratio(meds[1], meds[0]) if None not in meds else 'n/a'
        out.append(f'{key[0]:>3} {key[1]:>4} {cells[0]:>24} {cells[1]:>24} {r:>5}')
    return '\n'.join(out) + '\n'


def plot_data(rows):
    """Lines "N vanilla_KiB patched_KiB" of total executable memory for trampolines."""
    by = {}
    for r in rows:
        by.setdefault(r['n'], {})[r['kernel']] = r['total_pages'] * 4
    lines = ['# N vanilla_KiB patched_KiB (every trampoline alive, boot leftovers included)']
    for n in sorted(by):
        if 'vanilla' in by[n] and 'patched' in by[n]:
            lines.append(f'{n} {by[n]["vanilla"]} {by[n]["patched"]}')
    return '\n'.join(lines) + '\n'


def _gnuplot_head(png_path, title, xlabel, ylabel):
    """The settings both plots share: a log-log PNG with a grid and a key."""
    return f"""set terminal pngcairo size 900,560 font ',11'
set output '{png_path}'
set title '{title}'
set xlabel '{xlabel}'
set ylabel '{ylabel}'
set logscale xy
set grid
set key top left
"""


def gnuplot_script(data_path, png_path, title):
    return _gnuplot_head(png_path, title, 'tracing instances N (one trampoline each)',
                         'executable memory held by trampolines (KiB)') + f"""\
plot '{data_path}' using 1:2 with linespoints lw 2 pt 7 title 'vanilla v7.3 (a page each)', \\
     '{data_path}' using 1:3 with linespoints lw 2 pt 5 title 'patched (execslot slots)'
"""


def insn_plot_data(text):
    """Lines "N v_no_text p_no_text v_stack p_stack" from {kernel: {n: WB-TEXT figures}}:
    instructions per kernel_text_address() on an address in no text and per traced call
    with a stack trace, with N ops alive."""
    lines = ['# N ops alive; instructions per kernel_text_address() in no text (vanilla,',
             '# patched), per traced call taking a stack trace (vanilla, patched)']
    v, p = text.get('vanilla', {}), text.get('patched', {})
    for n in sorted(set(v) & set(p), key=int):
        cells = [f'{r[k] / r["loops"]:.1f}' for k in ('no_text_ns', 'stack_ns')
                 for r in (v[n], p[n])]
        lines.append(f'{n} ' + ' '.join(cells))
    return '\n'.join(lines) + '\n'


def insn_gnuplot_script(data_path, png_path, title):
    return _gnuplot_head(png_path, title, 'ftrace ops alive N (one trampoline each)',
                         'instructions per operation (QEMU -icount)') + f"""\
plot '{data_path}' using 1:2 with linespoints lw 2 pt 7 title 'kernel\\_text\\_address(), vanilla', \\
     '{data_path}' using 1:3 with linespoints lw 2 pt 5 title 'kernel\\_text\\_address(), patched', \\
     '{data_path}' using 1:4 with linespoints lw 2 pt 9 title 'traced call + stack trace, vanilla', \\
     '{data_path}' using 1:5 with linespoints lw 2 pt 11 title 'traced call + stack trace, patched'
"""


# ---------------------------------------------------------------------------
# sending

MAINT_RE = re.compile(r'^(.*?@[^\s()]+)\s+\((.*)\)\s*$')


# Cc'd besides what get_maintainer.pl finds: who wrote or maintains the code the series
# builds on without touching its files (text_poke and ITS/call-depth thunks, which the
# builder relocates around; the ORC unwinder, which finds frames in the trampolines by
# offset; perf ksymbol events, which kprobes now sends per slot; the execmem_alloc and
# bpf_prog_pack proposals; the author of the commit patch 1 fixes).
EXTRA_CC = [
    'Peter Zijlstra <peterz@infradead.org>',
    'Josh Poimboeuf <jpoimboe@kernel.org>',
    'Adrian Hunter <adrian.hunter@intel.com>',
    'Song Liu <song@kernel.org>',
    'Menglong Dong <dongml2@chinatelecom.cn>',
]


def parse_get_maintainer(text, extra_cc=()):
    """(to, cc) from scripts/get_maintainer.pl output with role stats: maintainers
    (and x86@kernel.org) are To, reviewers and lists Cc, then `extra_cc`; order kept, no
    duplicates."""
    to, cc = [], []
    for line in text.splitlines():
        line = line.strip()
        m = MAINT_RE.match(line)
        if not m:
            continue
        who, role = m.group(1), m.group(2)
        dest = to if role.startswith('maintainer') else cc
        if who not in to and who not in cc:
            dest.append(who)
    if not to:
        raise WorkbenchError('get_maintainer.pl named no maintainer')
    for who in extra_cc:
        if who not in to and who not in cc:
            cc.append(who)
    return to, cc


def bench_summary(data):
    """The cover letter's figures, from results/bench.json of `bench --readme`."""
    rows = {(r['kernel'], r['n']): r for r in data['rows']}
    ns = sorted({r['n'] for r in data['rows']})
    out = [f'  ftrace trampolines (executable memory with N tracing instances, each',
           f'  with a trampoline; boot-time trampolines included):']
    for n in ns:
        v, p = rows.get(('vanilla', n)), rows.get(('patched', n))
        if v and p and p['total_pages']:
            out.append(f'    N={n:<5} vanilla {v["total_pages"] * 4:>5} KiB, patched '
                       f'{p["total_pages"] * 4:>4} KiB ({v["total_pages"] / p["total_pages"]:.1f}x less)')
    kp = data.get('kprobes', {})
    tags = sorted({t for k in kp.values() for t in k}, key=kp_tag_order)
    out.append('  kprobes at function offsets (all executable pages, trampolines too):')
    for t in tags:
        v, p = kp.get('vanilla', {}).get(t), kp.get('patched', {}).get(t)
        if v and p and p['exec_pages']:
            what = ('mix: %d kprobes + %s instances' % (v['n'], data.get('mix_instances', '?'))
                    if t == 'mix' else f'{v["n"]} kprobes')
            out.append(f'    {what}: vanilla {v["exec_pages"] * 4} KiB, patched '
                       f'{p["exec_pages"] * 4} KiB ({v["exec_pages"] / p["exec_pages"]:.1f}x less)')
    cost = data.get('cost', {})
    v, p = cost.get('vanilla', {}), cost.get('patched', {})
    keys = [k for k in v if k.startswith('instances-') and k in p]
    if keys:
        k = max(keys, key=lambda x: int(x.split('-')[1]))
        out.append(f'  creating / freeing {k.split("-")[1]} instances (a trampoline each):')
        for what, key in (('set_memory_*() calls', 'setmem'),
                          ('splits of a large mapping', 'split'),
                          ('TLB flushes', 'flush')):
            if f'{key}_create' in v[k] and f'{key}_create' in p[k]:
                out.append(f'    {what}: vanilla {v[k][key + "_create"]} / '
                           f'{v[k][key + "_free"]}, patched {p[k][key + "_create"]} / '
                           f'{p[k][key + "_free"]}')
        out.append(f'    instructions, patched/vanilla: '
                   f'{ratio(p[k]["create_us"], v[k]["create_us"])}'
                   f' / {ratio(p[k]["free_us"], v[k]["free_us"])}')
    cyc = data.get('cycles', {})
    cv, cp = cyc.get('vanilla', {}), cyc.get('patched', {})
    for n in sorted(set(cv) & set(cp), key=int):
        out.append(f'  {n} create/free cycles of one trampoline, vanilla / patched:')
        out.append(f'    set_memory_*() calls {cv[n]["setmem"]} / {cp[n]["setmem"]}, '
                   f'TLB flushes {cv[n]["flush"]} / {cp[n]["flush"]}')
    calls = data.get('insn_per_call', {})
    cv, cp = calls.get('vanilla', {}), calls.get('patched', {})
    cells = []
    for k in sorted(cv):
        if k in cp:
            cells.append(f'{k.replace("-", " ")} {spread(cv[k])[0]:.1f} / '
                         f'{spread(cp[k])[0]:.1f}')
    if cells:
        out.append('  instructions per traced call (ftrace-ops.ko), vanilla / patched:')
        out += ['    ' + ', '.join(cells[i:i + 2]) for i in range(0, len(cells), 2)]
    tl = data.get('text_lookup', {})
    tv, tp = tl.get('vanilla', {}), tl.get('patched', {})
    ns = sorted(set(tv) & set(tp), key=int)
    if ns:
        out.append('  instructions per kernel_text_address() on an address in no text,')
        out.append('  and per traced call that takes a stack trace through its')
        out.append('  trampoline, vanilla / patched, with N ops alive:')
        for n in ns:
            v, p = tv[n], tp[n]
            out.append(f'    N={n:<5} {v["no_text_ns"] / v["loops"]:.0f} / '
                       f'{p["no_text_ns"] / p["loops"]:.0f}, '
                       f'{v["stack_ns"] / v["loops"]:.0f} / {p["stack_ns"] / p["loops"]:.0f}')
    boots = data.get('boot_ns', {})
    if boots.get('vanilla') and boots.get('patched'):
        bv, bp = boots['vanilla'][0], boots['patched'][0]
        out.append('  boot, instructions patched/vanilla: to init '
                   f'{ratio(bp["init"], bv["init"])},')
        out.append('    ftrace startup tests '
                   f'{ratio(bp["tracer_tests"], bv["tracer_tests"])} (tracers), '
                   f'{ratio(bp["event_tests"], bv["event_tests"])} (events)')
    if data.get('bloat_total'):
        out.append(f'  vmlinux: {data["bloat_total"]}')
    return '\n'.join(out)


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


# ---------------------------------------------------------------------------
# Fixes: tags

# What the public record says about the commits that the series' Fixes: tags name:
# the subject, and a line that the commit added to the base tree (the line the fix is
# about). The base is a tarball without history, so the check reads the record here.
# 0c3772a8db1f: bpf-next, "[PATCH bpf-next v3 2/6] x86/ftrace: implement
# DYNAMIC_FTRACE_WITH_JMP" (20251118123639.688444-3-dongml2@chinatelecom.cn), which
# made ftrace_call_replace() read bit 0 of its target; 25e4e3565d45 before it only
# added the generic FTRACE_OPS_FL_JMP flag.
FIXES_RECORD = {
    '0c3772a8db1f': ('x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP',
                     'arch/x86/kernel/ftrace.c', 'if (ftrace_is_jmp(addr)) {'),
}

_FIXES_RE = re.compile(r'^Fixes: ([0-9a-f]{12,40}) \("(.*)"\)$', re.M)


def changelog(patch_text):
    """A format-patch file's headers and changelog: what comes before the first '---'."""
    return patch_text.split('\n---\n', 1)[0]


def parse_fixes(patch_text):
    """The (id, subject) of each Fixes: tag in a patch's changelog."""
    return _FIXES_RE.findall(changelog(patch_text))


def check_fixes(fixes, base_file_text):
    """Why a Fixes: tag (id, subject) is wrong by FIXES_RECORD, or None.
    base_file_text(path) gives a file of the base tree."""
    cid, subject = fixes
    rec = FIXES_RECORD.get(cid[:12])
    if rec is None:
        return f'{cid[:12]} is not a commit the record names (FIXES_RECORD)'
    want, path, line = rec
    if subject != want:
        return f'{cid[:12]} is "{want}", not "{subject}"'
    if line not in base_file_text(path):
        return f'{path} of the base lacks the line {cid[:12]} added: {line}'
    return None


def maintainer_sections(text):
    """The MAINTAINERS sections that `get_maintainer.pl --sections` printed for a file,
    THE REST excepted: the section titles, lines that are not `X:\tvalue` fields."""
    names = []
    for line in text.splitlines():
        if not line.strip() or re.match(r'^[A-Z]:\t', line):
            continue
        if line.strip() != 'THE REST':
            names.append(line.strip())
    return names
