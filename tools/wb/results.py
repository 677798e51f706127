"""Test results, and the readings of what a guest printed on its console.

A `Result` is one line of `test` ("PASS name", "FAIL name: why"); `summary_line()` is its
last line. Here: the ftrace startup tests, KUnit's JSON and the guest's KTAP results
(both made by the base tree's kunit.py, which boot.py runs), the bench scripts' figure
lines, the demo's lines and the boot's printk timestamps. ktap.py takes the guest's
lines out of the console; boot.py reads the splats and the guest's exit status.
Nothing here runs a command; everything takes text and returns values or raises
WorkbenchError.
"""

import json
import re
from dataclasses import dataclass

from .ktap import failures, figures, guest_lines
from .ktap import results as ktap_results
from .util import WorkbenchError


@dataclass
class Result:
    name: str
    ok: object      # True, False, or None for a test the kernel itself skipped
    why: str = ''

    def line(self):
        word = {True: 'PASS', False: 'FAIL', None: 'SKIP'}[self.ok]
        return f'{word} {self.name}' + (f': {self.why}' if self.why else '')


def summary_line(results):
    passed = sum(1 for r in results if r.ok is True)
    failed = sum(1 for r in results if r.ok is False)
    return f'{passed} passed, {failed} failed'


def any_failed(results):
    return any(r.ok is False for r in results)


def print_results(results):
    for r in results:
        print(r.line(), flush=True)


def exit_if_failed(results):
    """A command whose results include a failure exits with status 1."""
    if any_failed(results):
        raise SystemExit(1)


def prefixed(label, results):
    """`results` with their names prefixed by `label: ` (the boot they come from)."""
    return [Result(f'{label}: {r.name}', r.ok, r.why) for r in results]


CONSOLE_PREFIX_RE = re.compile(r'^\[\s*\d+\.\d+\]\s?')


def strip_console_prefix(line):
    return CONSOLE_PREFIX_RE.sub('', line.rstrip('\r\n'))


# ---------------------------------------------------------------------------
# The tests of a boot: ftrace startup tests, the guest's KTAP, KUnit

# ftrace startup self tests (kernel/trace/trace_selftest.c, trace_events.c, trace_kprobe.c):
#   "Testing tracer function: PASSED", "Testing dynamic ftrace ops #1: (1 0 1 1 0) ... PASSED",
#   "Testing event sched_switch: OK", "Testing kprobe tracing: OK", "... FAILED!" / "FAILED"
STARTUP_TEST_RE = re.compile(r'^(?:[a-z_]+: )?(Testing [^:]+?|Running tests? on [^:]+?):(.*)$')
STARTUP_OK_RE = re.compile(r'\b(PASSED|OK)\s*$')
STARTUP_FAIL_RE = re.compile(r'FAIL|[Ee]rror|BUG')


def _later_verdict(lines):
    """The verdict of a startup test in the lines after its own: True, False or None."""
    for later in lines:
        if STARTUP_TEST_RE.match(later):
            break
        # e.g. "(3 3 5 0 567605) PASSED" after the counters of "dynamic ftrace ops".
        if STARTUP_OK_RE.search(later):
            return True
        if STARTUP_FAIL_RE.search(later):
            return False
    return None


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
        verdict = _later_verdict(lines[i + 1:i + 40])
        if verdict is None:
            results.append(Result(f'startup: {name}', False, 'no verdict (kernel died or hung in it?)'))
        else:
            results.append(Result(f'startup: {name}', verdict, '' if verdict else rest))
    return results


def guest_results(json_text, lines):
    """One Result per check of the guest scripts' KTAP (tools/guest/lib.sh), from the
    JSON that the base tree's kunit.py parse made of the guest's `lines`
    (ktap.guest_lines) and from those lines (the reasons of failures, and subtests that
    failed on their own). A SKIP is listed, counted neither as passed nor as failed."""
    out = []
    for path, status, why in ktap_results(json_text, lines):
        ok = None if status == 'SKIP' else status == 'PASS'
        out.append(Result(f'guest: {path}', ok, 'skipped' if ok is None else why))
    return out


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


def demo_lines(log_text):
    """What `demo` shows of its boot: the guest's own lines (demo.sh's output)."""
    return guest_lines(log_text)


# ---------------------------------------------------------------------------
# The bench's measurements (tools/guest/tramp-mem.sh, tramp-cost.sh, text-lookup.sh,
# kprobe-stress.sh): figure lines "# wb-figure KIND key=value ...", read by ktap.figures

MEM_KEYS = ('tramps', 'pages', 'slot_pages', 'slots', 'slot_bytes', 'vmalloc_exec',
            'empty_pages')
KP_KEYS = ('n', 'registered', 'optimized', 'kprobe_pages', 'tramp_pages', 'exec_pages',
           'insn_bytes', 'optinsn_bytes')
COST_KEYS = ('create_us', 'free_us', 'create2_us', 'free2_us', 'setmem_create',
             'setmem_free', 'flush_create', 'flush_free', 'ipi_create', 'ipi_free',
             'tlb_create', 'tlb_free', 'split_create', 'split_free', 'collapse_create',
             'collapse_free', 'tramps', 'exec_kib', 'left', 'left_kib')
CYCLES_KEYS = ('fillers', 'us', 'setmem', 'flush', 'ipi', 'tlb', 'split', 'collapse')
TEXT_KEYS = ('loops', 'in_tramp_ns', 'no_text_ns', 'stack_ns', 'depth')


def _number(text, kind, fig):
    try:
        return int(text)
    except ValueError:
        raise WorkbenchError(f'guest figure {kind}: {text!r} is not a number: {fig}') from None


def _values(kind, fig, by, keys):
    """The fields of one figure but those in `by`, as ints; each of `keys` must be there."""
    missing = [k for k in (*by, *keys) if k not in fig]
    if missing:
        raise WorkbenchError(f'guest figure {kind} lacks {", ".join(missing)}: {fig}')
    return {k: _number(v, kind, fig) for k, v in fig.items() if k not in by}


def figure_table(log_text, kind, by, keys):
    """{key: {name: int}} from the figure lines of one kind: the fields named in `by`
    make the key (one field: its value; more: a tuple; digits become ints), the others
    are ints, and each of `keys` must be there. A later line of the same key wins."""
    out = {}
    for fig in figures(log_text, kind):
        vals = _values(kind, fig, by, keys)
        key = tuple(int(fig[b]) if fig[b].isdigit() else fig[b] for b in by)
        out[key[0] if len(by) == 1 else key] = vals
    return out


def guest_failures(log_text):
    """'path: why' of every "not ok" line of the guest's KTAP, at any depth."""
    return [f'{path}: {why}' for path, why in failures(guest_lines(log_text)).items()]


def guest_kernel_release(log_text):
    """The kernel release that tramp-mem.sh reports (figure mem-info), or '?'."""
    info = figures(log_text, 'mem-info')
    return info[0].get('kernel', '?') if info else '?'


def kernel_compiler(log_text):
    """The compiler of the booted kernel, from its "Linux version" banner, or '?': two
    builds of one tree by different compilers count different instructions."""
    m = re.search(r'Linux version \S+ \(\S+\) \((.*)\) #\d', log_text)
    return m.group(1).rsplit(', ', 1)[0] if m and ', ' in m.group(1) else '?'


def parse_mem_lines(log_text):
    """{n: {'held': {...}, 'back': {...}, 'abs': {...}}} from tramp-mem.sh's figures."""
    out = {}
    for (state, n), vals in figure_table(log_text, 'mem', ('state', 'n'), MEM_KEYS).items():
        out.setdefault(n, {})[state] = vals
    return out


def parse_kp_lines(log_text):
    """{tag: {...}} from the first round's kp figure of kprobe-stress.sh, per tag."""
    out = {}
    for fig in figures(log_text, 'kp'):
        if fig.get('round') == '1' and fig.get('tag') not in out:
            out[fig.get('tag')] = _values('kp', fig, ('tag', 'round'), KP_KEYS)
    return out


def parse_cost_lines(log_text):
    """{(what, n): {...}} from the cost figures of tramp-cost.sh."""
    return figure_table(log_text, 'cost', ('what', 'n'), COST_KEYS)


def parse_ptdump_lines(log_text):
    """{(what, n): {'pmd_kib': .., 'pte_kib': ..}} from the ptdump figures."""
    return figure_table(log_text, 'ptdump', ('what', 'n'), ('pmd_kib', 'pte_kib'))


def parse_text_lines(log_text):
    """{n: {...}} from the text figures of text-lookup.sh."""
    return figure_table(log_text, 'text', ('n',), TEXT_KEYS)


def parse_cycles_lines(log_text):
    """{n: {...}} from the cycles figures of tramp-cost.sh cycles."""
    return figure_table(log_text, 'cycles', ('n',), CYCLES_KEYS)


def parse_call_lines(log_text):
    """{(nr_ops_relevant, save_regs): [ns per call of each run]} from the call figures."""
    out = {}
    table = figure_table(log_text, 'call', ('rel', 'regs', 'run'),
                         ('calls', 'total_ns', 'ns_per_call'))
    for (rel, regs, _), vals in sorted(table.items()):
        # The module's own ns/call is rounded down to whole ns; recompute it.
        out.setdefault((rel, regs), []).append(vals['total_ns'] / vals['calls'])
    return out


_STAMP_RE = re.compile(r'^\[\s*(\d+)\.(\d{6})\] (.*)$')


def _first_line(lines, pred, what, start=0):
    """Index of the first of `lines` (from `start`) whose text satisfies `pred`."""
    for i in range(start, len(lines)):
        if pred(lines[i][1]):
            return i
    raise WorkbenchError('boot log: no line ' + what)


def _line_with(lines, text, start=0):
    return _first_line(lines, lambda t: text in t, repr(text), start)


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
    init = _line_with(lines, 'Run /init as init process')
    t0 = _line_with(lines, 'Running postponed tracer tests:')
    t1 = _first_line(lines, lambda t: not t.startswith(('Testing ', '(')),
                     'after the tracer tests', t0 + 1)
    e0 = _line_with(lines, 'Running tests on trace events:')
    e1 = _line_with(lines, 'Testing ftrace filter', e0) + 1
    if e1 >= len(lines):
        raise WorkbenchError('boot log: nothing after "Testing ftrace filter"')
    return {'init': lines[init][0], 'tracer_tests': lines[t1][0] - lines[t0][0],
            'event_tests': lines[e1][0] - lines[e0][0]}
