"""The bench's tables, plots and figures, from the measurements results.py parsed: pure
functions from dicts to text (report.txt, gnuplot data and scripts, results/README.md,
the cover letter's figures)."""

import re

from .util import WorkbenchError


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


# ---------------------------------------------------------------------------
# Trampoline memory (tools/guest/tramp-mem.sh)

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


# ---------------------------------------------------------------------------
# kprobes (tools/guest/kprobe-stress.sh)

def kp_tag_order(tag):
    """kprobes100 before kprobes1000 before mix."""
    m = re.match(r'^(\D*)(\d*)$', tag)
    return (m.group(1) == 'mix', m.group(1), int(m.group(2) or 0))


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


# ---------------------------------------------------------------------------
# Costs (tools/guest/tramp-cost.sh, text-lookup.sh) and the boot

def _all_n(table):
    """The N of {kernel: {n: ...}}, over both kernels, in order."""
    return sorted({n for rows in table.values() for n in rows})


def _kernel_rows(table, n):
    """[(kernel, row)] of one N: vanilla, then patched, where the kernel has a row."""
    return [(k, table[k][n]) for k in ('vanilla', 'patched') if n in table.get(k, {})]


def text_report(text):
    """Text table of {kernel: {n: {...}}} from the text figures: instructions per lookup."""
    out = ['kernel_text_address() and stack traces with N ops alive, each with a',
           'trampoline (tools/guest-mod/wbtext.c: its own ops, registered first and so',
           'last in ftrace\'s list, plus N-1 ops of ftrace-ops.ko). Instructions per call',
           '(guest clock under -icount): kernel_text_address() on an address inside the',
           'first ops\' trampoline and on module data (inside no text), and a call of a',
           'traced function whose callback takes a stack trace (stack_trace_save(): the',
           'ORC unwinder walks out through the trampoline).', '',
           f'{"N":>5} {"kernel":8} {"in trampoline":>14} {"in no text":>11} '
           f'{"stack trace":>12}']
    for n in _all_n(text):
        for kernel, r in _kernel_rows(text, n):
            out.append(f'{n:>5} {kernel:8} {r["in_tramp_ns"] / r["loops"]:>14.1f} '
                       f'{r["no_text_ns"] / r["loops"]:>11.1f} '
                       f'{r["stack_ns"] / r["loops"]:>12.1f}')
        v, p = text.get('vanilla', {}).get(n), text.get('patched', {}).get(n)
        if v and p:
            out.append(f'{"":>5} {"v/p":8} {ratio(v["in_tramp_ns"], p["in_tramp_ns"]):>14} '
                       f'{ratio(v["no_text_ns"], p["no_text_ns"]):>11} '
                       f'{ratio(v["stack_ns"], p["stack_ns"]):>12}')
    return '\n'.join(out) + '\n'


def _pair(r, k):
    """A count while creating / while freeing."""
    return f'{r[k + "_create"]:>4}/{r[k + "_free"]:<4}'


def _ptdump_report(ptdump):
    """The lines of the page-table dump's mappings: {kernel: {(what, n): {...}}}."""
    out = ['', 'Executable mappings of the module area (where execmem puts ftrace and',
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
    return out


def cost_report(cost, ptdump=None):
    """Text table of tramp-cost.sh's figures: {kernel: {(what, n): {...}}}, and the
    mappings of {kernel: {(what, n): {...}}} from the ptdump figures."""
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
    for key in sorted({k for c in cost.values() for k in c}):
        n = key[1]
        for kernel in ('vanilla', 'patched'):
            r = cost.get(kernel, {}).get(key)
            if not r:
                continue
            c = f'{_per(r["create_us"], n):.1f} ({_drift(r["create_us"], r["create2_us"])})'
            f = f'{_per(r["free_us"], n):.1f} ({_drift(r["free_us"], r["free2_us"])})'
            out.append(f'{key[0]:9} {n:>5} {kernel:8} {c:>20} {f:>20} '
                       f'{_pair(r, "setmem"):>11} {_pair(r, "flush"):>11} '
                       f'{_pair(r, "split"):>9} {_pair(r, "collapse"):>9} '
                       f'{_pair(r, "ipi"):>11} {_pair(r, "tlb"):>9}')
        v, p = cost.get('vanilla', {}).get(key), cost.get('patched', {}).get(key)
        if v and p:
            out.append(f'{"":9} {"":>5} {"p/v":8} {ratio(p["create_us"], v["create_us"]):>20} '
                       f'{ratio(p["free_us"], v["free_us"]):>20}')
    out += scale_report(cost)
    if ptdump:
        out += _ptdump_report(ptdump)
    return '\n'.join(out) + '\n'


def _growth(rows, key, n, field):
    """Per-object `field` at N over that at the next smaller N of the same kind, or ''."""
    smaller = [m for (w, m) in rows if w == key[0] and 0 < m < n]
    if not smaller or not n:
        return ''
    m = max(smaller)
    a, b = _per(rows[key][field], n), _per(rows[(key[0], m)][field], m)
    return f'{a / b:.2f}' if b else ''


def scale_report(cost):
    """Text table of what N objects hold and leave, and how the per-object cost grows
    with N: {kernel: {(what, n): {...}}} from tramp-cost.sh's figures."""
    out = ['', 'Scale: the vmalloc areas that execmem added with the N objects alive (KiB;',
           'execmem takes whole 2 MiB chunks for its ROX cache, so this grows in steps of',
           '2048 KiB and per object means something only at large N), what is left after',
           'freeing them and waiting for deferred frees (kallsyms trampolines, KiB of',
           'execmem vmalloc areas), and the growth of the per-object instructions from the',
           'next smaller N (1.00: linear; above 1: each object costs more when there are',
           'more).', '',
           f'{"what":9} {"N":>5} {"kernel":8} {"exec KiB":>9} {"B/obj":>7} {"left":>5} '
           f'{"left KiB":>9} {"create growth":>14} {"free growth":>12}']
    for key in sorted({k for c in cost.values() for k in c}):
        what, n = key
        if not n:
            continue
        for kernel in ('vanilla', 'patched'):
            rows = cost.get(kernel, {})
            r = rows.get(key)
            if not r or 'exec_kib' not in r:
                continue
            out.append(f'{what:9} {n:>5} {kernel:8} {r["exec_kib"]:>9} '
                       f'{r["exec_kib"] * 1024 / n:>7.0f} {r["left"]:>5} {r["left_kib"]:>9} '
                       f'{_growth(rows, key, n, "create_us"):>14} '
                       f'{_growth(rows, key, n, "free_us"):>12}')
    return out


def cycles_report(cycles):
    """Text table of {kernel: {n: {...}}} from the cycles figures."""
    out = ['One tracing instance created and freed over and over ("fillers": instances',
           'made first so that every cycle\'s trampoline needs a page of its own; only',
           'with execslot, whose pages hold many). kI/cycle as above; the counts are',
           'totals over all cycles.', '',
           f'{"cycles":>6} {"kernel":8} {"fillers":>7} {"kI/cycle":>10} {"set_memory":>10} '
           f'{"flushes":>8} {"splits":>7} {"collapses":>9} {"IPIs":>6} {"TLB":>5}']
    for n in _all_n(cycles):
        for kernel, r in _kernel_rows(cycles, n):
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


# ---------------------------------------------------------------------------
# Plots (gnuplot)

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
    """Lines "N v_no_text p_no_text v_stack p_stack" from {kernel: {n: text figures}}:
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
# results/README.md

def results_readme(cmdline, report):
    """results/README.md, written by `bench --readme` beside the files it links: how it
    was made, the plots and `report`."""
    return ('# Bench results, generated by `tools/workbench bench --readme`\n\n'
            'How the bench measures and how to read these tables: '
            '[docs/bench.md](../docs/bench.md).\n\n'
            f'Written by `{cmdline} --readme`; the guest scripts are in `tools/guest/` '
            '(`tramp-mem.sh`, `tramp-cost.sh`, `text-lookup.sh`, `kprobe-stress.sh`) '
            'and the module in `tools/guest-mod/`. Plots: '
            '[memory.png](memory.png) (memory), '
            '[insn.png](insn.png) (instructions per lookup); all '
            'figures as JSON: [bench.json](bench.json).\n\n'
            '![executable memory vs N](memory.png)\n'
            '![instructions per lookup vs ops alive](insn.png)\n\n```\n'
            + report + '```\n')


# ---------------------------------------------------------------------------
# The cover letter's figures (from results/bench.json)

def _summary_trampolines(data):
    rows = {(r['kernel'], r['n']): r for r in data['rows']}
    out = ['  ftrace trampolines (executable memory with N tracing instances, each',
           '  with a trampoline; boot-time trampolines included):']
    for n in sorted({r['n'] for r in data['rows']}):
        v, p = rows.get(('vanilla', n)), rows.get(('patched', n))
        if v and p and p['total_pages']:
            out.append(f'    N={n:<5} vanilla {v["total_pages"] * 4:>5} KiB, patched '
                       f'{p["total_pages"] * 4:>4} KiB ({v["total_pages"] / p["total_pages"]:.1f}x less)')
    return out


def _summary_kprobes(data):
    kp = data.get('kprobes', {})
    tags = sorted({t for k in kp.values() for t in k}, key=kp_tag_order)
    out = ['  kprobes at function offsets (all executable pages, trampolines too):']
    for t in tags:
        v, p = kp.get('vanilla', {}).get(t), kp.get('patched', {}).get(t)
        if v and p and p['exec_pages']:
            what = ('mix: %d kprobes + %s instances' % (v['n'], data.get('mix_instances', '?'))
                    if t == 'mix' else f'{v["n"]} kprobes')
            out.append(f'    {what}: vanilla {v["exec_pages"] * 4} KiB, patched '
                       f'{p["exec_pages"] * 4} KiB ({v["exec_pages"] / p["exec_pages"]:.1f}x less)')
    return out


def _summary_cost(data):
    cost = data.get('cost', {})
    v, p = cost.get('vanilla', {}), cost.get('patched', {})
    keys = [k for k in v if k.startswith('instances-') and k in p]
    if not keys:
        return []
    k = max(keys, key=lambda x: int(x.split('-')[1]))
    out = [f'  creating / freeing {k.split("-")[1]} instances (a trampoline each):']
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
    return out


def _summary_cycles_calls(data):
    out = []
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
    return out


def _summary_lookup_boot(data):
    out = []
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
    return out


def bench_summary(data):
    """The cover letter's figures, from results/bench.json of `bench --readme`."""
    out = (_summary_trampolines(data) + _summary_kprobes(data) + _summary_cost(data)
           + _summary_cycles_calls(data) + _summary_lookup_boot(data))
    if data.get('bloat_total'):
        out.append(f'  vmlinux: {data["bloat_total"]}')
    return '\n'.join(out)
