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
MEM_KEYS = ('tramps', 'pages', 'slot_pages', 'slots', 'slot_bytes', 'vmalloc_exec')


def _kv(text, line, keys):
    vals = {k: int(v) for k, v in (kv.split('=') for kv in text.split())}
    missing = [k for k in keys if k not in vals]
    if missing:
        raise WorkbenchError(f'guest line lacks {", ".join(missing)}: {line}')
    return vals


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
            'leaked_after_removal': {k: v for k, v in back.items() if v},
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
           'chunks, so it moves in 2 MiB steps, on both kernels).',
           '',
           f'{"N":>5} {"kernel":8} {"added":>6} {"KiB added":>9} {"all":>5} {"pages":>6} '
           f'{"B/tramp":>8} {"packing":>8} {"vmalloc KiB":>11}  leak after removal']
    for r in rows:
        out.append(f'{r["n"]:>5} {r["kernel"]:8} {r["pages_added"]:>6} '
                   f'{r["bytes_added"] / 1024:>9.1f} {r["total_trampolines"]:>5} '
                   f'{r["total_pages"]:>6} {r["bytes_per_trampoline"]:>8.1f} '
                   f'{r["packing"] * 100:>7.1f}% {r["vmalloc_exec_added"] / 1024:>11.0f}  '
                   + (', '.join(f'{k} {v}' for k, v in r['leaked_after_removal'].items())
                      or 'none'))
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
COST_KEYS = ('create_us', 'free_us', 'setmem_create', 'setmem_free', 'flush_create',
             'flush_free', 'ipi_create', 'ipi_free', 'tlb_create', 'tlb_free', 'tramps')
CALL_RE = re.compile(r'^WB-CALL rel=(\d+) regs=(\d+) run=(\d+)((?: \w+=-?\d+)+)\s*$')


def parse_cost_lines(log_text):
    """{(what, n): {...}} from the WB-COST lines of tramp-cost.sh."""
    out = {}
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw).strip()
        if line.startswith('WB-COST-ERROR'):
            raise WorkbenchError(f'guest: {line}')
        m = COST_RE.match(line)
        if m:
            out[(m.group(1), int(m.group(2)))] = _kv(m.group(3), line, COST_KEYS)
    return out


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


def cost_report(cost):
    """Text table of tramp-cost.sh's figures: {kernel: {(what, n): {...}}}."""
    out = ['Creating and freeing trampolines. "instances": N tracing instances, each tracing',
           'one function (one trampoline each, plus a ring buffer and tracefs files);',
           '"ops": samples/ftrace/ftrace-ops.ko registering N ops (one trampoline each)',
           'at insmod, unregistering them at rmmod ("ops 0": the module alone). ms from',
           'printk timestamps in the guest, in a pass without probes (TCG: compare only the',
           'ratio p/v). Counted in a second pass: set_memory = calls of set_memory_{rox,ro,',
           'rw,x,nx}; flushes = calls of flush_tlb_kernel_range/flush_tlb_all and runs of',
           '__cpa_flush_tlb on each CPU (kprobe events); IPIs = function-call interrupts,',
           'TLB = TLB-shootdown interrupts, all CPUs (/proc/interrupts CAL, TLB). c/f =',
           'while creating / while freeing.',
           '',
           f'{"what":9} {"N":>5} {"kernel":8} {"create ms":>9} {"free ms":>9} '
           f'{"set_memory c/f":>14} {"flushes c/f":>12} {"IPIs c/f":>11} {"TLB c/f":>11}']
    keys = sorted({k for c in cost.values() for k in c})
    for key in keys:
        for kernel in ('vanilla', 'patched'):
            r = cost.get(kernel, {}).get(key)
            if not r:
                continue
            out.append(f'{key[0]:9} {key[1]:>5} {kernel:8} {r["create_us"] / 1000:>9.1f} '
                       f'{r["free_us"] / 1000:>9.1f} '
                       f'{r["setmem_create"]:>6} /{r["setmem_free"]:>6} '
                       f'{r["flush_create"]:>5} /{r["flush_free"]:>5} '
                       f'{r["ipi_create"]:>4} /{r["ipi_free"]:>5} '
                       f'{r["tlb_create"]:>4} /{r["tlb_free"]:>5}')
        v, p = cost.get('vanilla', {}).get(key), cost.get('patched', {}).get(key)
        if v and p:
            out.append(f'{"":9} {"":>5} {"p/v":8} {ratio(p["create_us"], v["create_us"]):>9} '
                       f'{ratio(p["free_us"], v["free_us"]):>9}')
    return '\n'.join(out) + '\n'


def call_report(calls, runs_calls):
    """Text table of ns per traced call: {kernel: {(rel, regs): [ns, ...]}}."""
    out = ['ns per traced call, samples/ftrace/ftrace-ops.ko (nr_function_calls='
           f'{runs_calls[1]}), {runs_calls[0]} runs per case: median [min, max];',
           'rel = nr_ops_relevant (1: the call site calls the ops\' own trampoline, 2: the',
           'list function through ftrace_caller/ftrace_regs_caller), regs = save_regs.',
           'The module times the loop with ktime, which advances in 4 ms steps in this',
           'guest: the runs are long to keep that step small against them.',
           '',
           f'{"rel":>3} {"regs":>4} {"vanilla ns/call":>24} {"patched ns/call":>24} {"p/v":>5}']
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


def gnuplot_script(data_path, png_path, title):
    return f"""set terminal pngcairo size 900,560 font ',11'
set output '{png_path}'
set title '{title}'
set xlabel 'tracing instances N (one trampoline each)'
set ylabel 'executable memory held by trampolines (KiB)'
set logscale xy
set grid
set key top left
plot '{data_path}' using 1:2 with linespoints lw 2 pt 7 title 'vanilla v7.3 (a page each)', \\
     '{data_path}' using 1:3 with linespoints lw 2 pt 5 title 'patched (execslot slots)'
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
        out.append(f'  creating / freeing {k.split("-")[1]} instances:')
        out.append(f'    set_memory_*() calls: vanilla {v[k]["setmem_create"]} / '
                   f'{v[k]["setmem_free"]}, patched {p[k]["setmem_create"]} / '
                   f'{p[k]["setmem_free"]}')
        out.append(f'    time, patched/vanilla: {ratio(p[k]["create_us"], v[k]["create_us"])}'
                   f' / {ratio(p[k]["free_us"], v[k]["free_us"])}')
    calls = data.get('ns_per_call', {})
    cv, cp = calls.get('vanilla', {}), calls.get('patched', {})
    cells = []
    for k in sorted(cv):
        if k in cp:
            cells.append(f'{k.replace("-", " ")} {ratio(spread(cp[k])[0], spread(cv[k])[0])}')
    if cells:
        out.append('  ns per traced call (ftrace-ops.ko), median patched/vanilla')
        out.append('  (TCG timings are noisy: min and max are in the report):')
        out.append('    ' + ', '.join(cells))
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
