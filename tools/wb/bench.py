"""`bench`: vanilla and patched kernels of one config built and booted at once under
QEMU -icount with the same guest command, their figures checked and collected, and the
report, JSON and plots written (to the cache, or with --readme to results/)."""

import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from functools import partial

from .benchreport import (boot_report, call_report, cost_report, cycles_report,
                          gnuplot_script, insn_gnuplot_script, insn_plot_data, kp_report,
                          mem_report, mem_rows, plot_data, results_readme, text_report)
from .boot import ICOUNT_APPEND, qemu_boot
from .kbuild import build, guest_modules
from .kconfig import kernel_path, parse_config
from .results import (boot_times, guest_kernel_release, kernel_compiler, parse_call_lines,
                      parse_cost_lines, parse_cycles_lines, guest_failures, parse_kp_lines,
                      parse_mem_lines, parse_ptdump_lines, parse_text_lines)
from .settings import RESULTS
from .util import WorkbenchError, in_threads, run, say
from .vmlinux import parse_nm, split_probe_offset, text_digest


@dataclass(frozen=True)
class BenchOptions:
    """What `bench` measures and where it writes: its command-line options (the
    defaults are those of the command line, in cli.py)."""
    config: str
    instances: list         # N tracing instances for the memory figures
    cost_instances: list    # N instances created and freed for the costs
    ops: list               # N ops of ftrace-ops.ko registered and unregistered
    cost_kprobes: list      # N kprobes registered and unregistered
    cycles: int             # create/free cycles of one instance
    text_loops: int         # kernel_text_address() calls and stack traces per figure
    text_ops: list          # ops alive during the text lookups
    call_runs: int          # runs of each per-call case
    calls: int              # traced calls per run
    kprobes: list           # kprobes of the kprobes runs (the largest also for the mix)
    kprobe_rounds: int      # rounds of the largest kprobes-alone run
    mix_instances: int      # instances alive during the mixed kprobes run
    json: str               # also write the JSON there, or None
    readme: bool            # write to results/ (README.md, report, JSON, plots)
    timeout: int            # per boot, in seconds


def tramp_code_bytes(out):
    """Bytes of one ftrace_caller trampoline of the kernel built in `out`: the template,
    then the return (create_trampoline()'s RET_SIZE, or our 5-byte return area) and
    the ops pointer, as each kernel lays them out."""
    syms = parse_nm(run(['nm', os.path.join(out, 'vmlinux')], capture=True).stdout)
    code = syms['ftrace_caller_end'] - syms['ftrace_caller']
    if 'x86_ftrace_tramp_create' in syms:
        return (code + 5 + 7) // 8 * 8 + 8
    with open(os.path.join(out, '.config')) as fh:
        cfg = parse_config(fh.read())
    ret = 5 if cfg.get('CONFIG_MITIGATION_RETPOLINE') == 'y' else \
        1 + (cfg.get('CONFIG_MITIGATION_SLS') == 'y')
    return code + ret + 8


SPLIT_FUNC = '__change_page_attr_set_clr'


def split_probe_at(out):
    """Where a kprobe counts the splits of large kernel mappings in the kernel built in
    `out`: __split_large_page() is inlined into SPLIT_FUNC and ends with its one call of
    flush_tlb_all() there; "SPLIT_FUNC+0xOFF" of that call."""
    vmlinux = os.path.join(out, 'vmlinux')
    p = run(['objdump', '-d', '--no-show-raw-insn', f'--disassemble={SPLIT_FUNC}', vmlinux],
            capture=True)
    try:
        return split_probe_offset(p.stdout, SPLIT_FUNC)
    except ValueError as e:
        raise WorkbenchError(f'{vmlinux}: {e}') from None


def machine_info():
    """One line on the host and the guest the bench ran on."""
    model = '?'
    with open('/proc/cpuinfo') as fh:
        for line in fh:
            if line.startswith('model name'):
                model = line.split(':', 1)[1].strip()
                break
    qemu = run(['qemu-system-x86_64', '--version'], capture=True).stdout.splitlines()[0]
    return (f'host: {model}, {os.cpu_count()} cores; {qemu.strip()}; guest: QEMU/TCG '
            '(no KVM: a nested KVM guest hangs here), 2 vCPUs, 2 GiB')


def bloat_report(tree, vanilla_out, patched_out):
    """scripts/bloat-o-meter of vmlinux, vanilla -> patched: its total and largest rows."""
    p = run([sys.executable, os.path.join(tree, 'scripts', 'bloat-o-meter'),
             os.path.join(vanilla_out, 'vmlinux'), os.path.join(patched_out, 'vmlinux')],
            capture=True)
    lines = p.stdout.splitlines()
    out = ['scripts/bloat-o-meter vmlinux (vanilla -> patched):']
    out += [ln for ln in lines if ln.startswith(('add/remove', 'Total'))]
    rows = [ln for ln in lines[2:] if ln and not ln.startswith(('add/remove', 'Total'))]
    out += ['largest changes:'] + rows[:8]
    total = next((ln for ln in lines if ln.startswith('Total')), '')
    return '\n'.join(out) + '\n', total


def _ints(values):
    return ' '.join(map(str, values))


def bench_guest_cmd(opts):
    kps = sorted(opts.kprobes)
    cmd = [f'sh /wb/tramp-mem.sh {_ints(opts.instances)}',
           f'sh /wb/tramp-cost.sh instances {_ints(opts.cost_instances)}',
           f'sh /wb/tramp-cost.sh ops {_ints(opts.ops)}',
           f'sh /wb/tramp-cost.sh kprobes {_ints(opts.cost_kprobes)}',
           f'sh /wb/tramp-cost.sh cycles {opts.cycles}',
           f'sh /wb/tramp-cost.sh calls {opts.call_runs} {opts.calls}',
           f'sh /wb/text-lookup.sh {opts.text_loops} {_ints(opts.text_ops)}']
    for k in kps[:-1]:
        cmd.append(f'sh /wb/kprobe-stress.sh {k} 1 kprobes{k}')
    cmd.append(f'sh /wb/kprobe-stress.sh {kps[-1]} {opts.kprobe_rounds} kprobes{kps[-1]}')
    cmd.append(f'sh /wb/tramp-mem.sh --keep {opts.mix_instances} && '
               f'sh /wb/kprobe-stress.sh {kps[-1]} 1 mix')
    return '; '.join(cmd)


def bench_cmdline(opts):
    """The `tools/workbench bench` command that gives these options."""
    return 'tools/workbench bench ' + ' '.join(
        [f'--config {opts.config}'] * (opts.config != 'default')
        + ['--instances ' + _ints(opts.instances)]
        + ['--cost-instances ' + _ints(opts.cost_instances)]
        + ['--ops ' + _ints(opts.ops)]
        + ['--cost-kprobes ' + _ints(opts.cost_kprobes)]
        + [f'--cycles {opts.cycles}']
        + [f'--text-loops {opts.text_loops} --text-ops ' + _ints(opts.text_ops)]
        + ['--kprobes ' + _ints(opts.kprobes)]
        + [f'--call-runs {opts.call_runs} --calls {opts.calls}'])


# The kernel command line of the bench boots. Small per-instance ring buffers: 1000
# instances of the default 1.4 MiB per CPU would not fit in the guest.
BENCH_APPEND = 'trace_buf_size=4096 kunit.enable=0'


def _require(ok, msg):
    if not ok:
        raise WorkbenchError(msg)


def _check_bench_boot(label, res):
    # The guest status is that of the last kprobe stress run, whose own checks are
    # for `test`; here only a splat or a dead guest fails the bench.
    problems = [p for p in res.problems() if 'guest command exited' not in p]
    _require(not problems, f'bench boot of {label} failed ({res.log_path}):\n  '
             + '\n  '.join(problems))
    # The guest scripts' own checks (KTAP "not ok", kprobe-stress.sh's among them) must
    # pass on both kernels.
    bad = guest_failures(res.text)
    _require(not bad, f'{label}: ' + '; '.join(bad[:5]))


def _memory_figures(label, opts, res, out):
    """The kprobes and trampoline memory figures of one bench boot."""
    kp = parse_kp_lines(res.text)
    want = sorted([f'kprobes{k}' for k in opts.kprobes] + ['mix'])
    _require(sorted(kp) == want, f'{label}: the kprobes measurements are missing '
             f'(have {sorted(kp)}; {res.log_path})')
    mem = parse_mem_lines(res.text)
    _require(sorted(mem) == sorted(opts.instances),
             f'{label}: measured n={sorted(mem)}, asked for {opts.instances}')
    return {'kp': kp, 'rows': mem_rows(label, mem, tramp_code_bytes(out))}


def _cost_figures(label, opts, res):
    """The create/free costs, mappings, cycles, per-call and lookup figures of one boot."""
    r = {'cost': parse_cost_lines(res.text)}
    want = sorted([('instances', n) for n in opts.cost_instances]
                  + [('ops', n) for n in [0] + opts.ops]
                  + [('kprobes', n) for n in opts.cost_kprobes])
    _require(sorted(r['cost']) == want, f'{label}: cost measurements missing (have '
             f'{sorted(r["cost"])}; {res.log_path})')
    r['ptdump'] = parse_ptdump_lines(res.text)
    r['cycles'] = parse_cycles_lines(res.text)
    _require(list(r['cycles']) == [opts.cycles],
             f'{label}: no cycles measurement ({res.log_path})')
    r['calls'] = parse_call_lines(res.text)
    got = {k: len(v) for k, v in r['calls'].items()}
    _require(got == {(rel, s): opts.call_runs for rel in (1, 2) for s in (0, 1)},
             f'{label}: per-call runs missing (have {got}; {res.log_path})')
    r['text'] = parse_text_lines(res.text)
    _require(sorted(r['text']) == sorted(opts.text_ops),
             f'{label}: text lookups measured for {sorted(r["text"])}, '
             f'asked for {opts.text_ops} ({res.log_path})')
    return r


def bench_kernel(P, opts, label, vanilla, out, gcmd):
    """Boots one kernel of the bench with the guest command and returns its figures."""
    tree = P.tree(vanilla)
    guest_modules(P, tree, out)
    res = qemu_boot(P, out, tree, f'export WB_SPLIT_AT={split_probe_at(out)}; {gcmd}',
                    f'bench-{label}-{opts.config}', opts.timeout,
                    kernel_path(vanilla, opts.config), append=BENCH_APPEND, icount=True)
    _check_bench_boot(label, res)
    # Paths in the cache, as $KWB_CACHE/...: the report goes to the repository, which
    # names no file outside itself but the workbench's cache.
    text = text_digest(os.path.join(out, 'vmlinux'))
    r = {'kernel': (f'{guest_kernel_release(res.text)} by {kernel_compiler(res.text)}, '
                    f'.text {text} ({label}, config {opts.config}, '
                    f'$KWB_CACHE/{os.path.relpath(out, P.cache)}/arch/x86/boot/bzImage, '
                    f'console log $KWB_CACHE/{os.path.relpath(res.log_path, P.cache)})')}
    r.update(_memory_figures(label, opts, res, out))
    r.update(_cost_figures(label, opts, res))
    r['boot'] = boot_times(res.text)
    return r


def bench_boot_again(P, opts, label, vanilla, out):
    """A second boot of one kernel, to nothing but a shell that exits: its boot times."""
    res = qemu_boot(P, out, P.tree(vanilla), 'true', f'bench-{label}-{opts.config}-again',
                    opts.timeout, kernel_path(vanilla, opts.config), append=BENCH_APPEND,
                    icount=True)
    if res.problems():
        raise WorkbenchError(f'second bench boot of {label} failed ({res.log_path}):\n  '
                             + '\n  '.join(res.problems()))
    return boot_times(res.text)


def _report_head(opts, cmdline, machine, kernels, gcmd):
    return [f'Command: {cmdline}', f'Date: {time.strftime("%Y-%m-%d %H:%M %Z")}',
            f'Machine: {machine}',
            f'Kernels: vanilla {kernels["vanilla"]}', f'         patched {kernels["patched"]}',
            'Guests: QEMU/TCG with -icount shift=0,sleep=off (one TCG thread for both',
            'vCPUs; the guest clock advances 1 ns per instruction executed, and jumps to',
            'the next timer when idle), kernel command line '
            f'"{BENCH_APPEND}{ICOUNT_APPEND}".',
            'Guest command (both kernels; WB_SPLIT_AT, where the splits are counted, is '
            f'found in each vmlinux): {gcmd}',
            'Second boot of each kernel, for the boot figures: true',
            '']


def _report(opts, head, fig, bloat_text):
    """report.txt: the head, then every table."""
    return ('\n'.join(head) + '\n'
            + mem_report(fig['rows'], opts.config, opts.instances) + '\n'
            + kp_report(fig['kp']) + '\n'
            + boot_report(fig['boots']) + '\n'
            + call_report(fig['calls'], (opts.call_runs, opts.calls)) + '\n'
            + cost_report(fig['cost'], fig['ptdump']) + '\n'
            + cycles_report(fig['cycles']) + '\n'
            + text_report(fig['text']) + '\n'
            + bloat_text)


def _bench_json(opts, cmdline, machine, gcmd, fig, bloat_total):
    """bench.json: every figure, with tuple keys made strings."""
    return {'command': cmdline, 'config': opts.config,
            'mode': 'QEMU/TCG -icount shift=0,sleep=off',
            'machine': machine, 'date': time.strftime('%F'), 'kernels': fig['kernels'],
            'guest_command': gcmd, 'rows': fig['rows'], 'kprobes': fig['kp'],
            'mix_instances': opts.mix_instances, 'bloat_total': bloat_total,
            'cost': {k: {f'{w}-{n}': v for (w, n), v in c.items()}
                     for k, c in fig['cost'].items()},
            'ptdump': {k: {f'{w}-{n}': v for (w, n), v in c.items()}
                       for k, c in fig['ptdump'].items()},
            'cycles': {k: {str(n): v for n, v in c.items()} for k, c in fig['cycles'].items()},
            'boot_ns': fig['boots'],
            'text_lookup': {k: {str(n): v for n, v in c.items()}
                            for k, c in fig['text'].items()},
            'insn_per_call': {k: {f'rel{r}-regs{g}': v for (r, g), v in c.items()}
                              for k, c in fig['calls'].items()}}


def write_memory_plot(outdir, rows, config):
    """memory.dat and memory.png in `outdir`: executable memory against N instances."""
    dat, png = os.path.join(outdir, 'memory.dat'), os.path.join(outdir, 'memory.png')
    with open(dat, 'w') as fh:
        fh.write(plot_data(rows))
    gp = gnuplot_script(dat, png, f'ftrace trampolines: executable memory, '
                        f'v7.3 vs execslot (config {config}, QEMU/TCG)')
    if not shutil.which('gnuplot'):
        raise WorkbenchError('gnuplot not found (gnuplot-nox; run `tools/workbench setup`)')
    run(['gnuplot'], input=gp, what='gnuplot')


def write_insn_plot(outdir, text, config):
    """insn.dat and insn.png in `outdir`: instructions per operation against the number
    of ops alive, from the text lookup figures {kernel: {n: {...}}}."""
    dat, png = os.path.join(outdir, 'insn.dat'), os.path.join(outdir, 'insn.png')
    with open(dat, 'w') as fh:
        fh.write(insn_plot_data(text))
    run(['gnuplot'], input=insn_gnuplot_script(
        dat, png, f'finding a trampoline by address, v7.3 vs execslot (config {config})'),
        what='gnuplot')


def _write_json(path, data):
    with open(path, 'w') as fh:
        json.dump(data, fh, indent=1)


def _boot_both(P, opts, outs, gcmd):
    """The figures of both kernels, and a second boot of each: under -icount the guest's
    clock does not depend on the host, so both kernels boot at once, one host thread
    each."""
    both = (('vanilla', True), ('patched', False))
    got = dict(zip(outs, in_threads([
        partial(bench_kernel, P, opts, label, vanilla, outs[label], gcmd)
        for label, vanilla in both])))
    again = dict(zip(outs, in_threads([
        partial(bench_boot_again, P, opts, label, vanilla, outs[label])
        for label, vanilla in both])))
    fig = {name: {k: g[name] for k, g in got.items()}
           for name in ('kp', 'cost', 'calls', 'ptdump', 'cycles', 'text')}
    fig['rows'] = got['vanilla']['rows'] + got['patched']['rows']
    fig['boots'] = {k: [got[k]['boot'], again[k]] for k in got}
    fig['kernels'] = {k: g['kernel'] for k, g in got.items()}
    return fig


def run_bench(P, opts):
    """`bench`: build, boot both kernels, print and write the report and its files."""
    gcmd = bench_guest_cmd(opts)
    outs = {label: build(P, vanilla, opts.config)
            for label, vanilla in (('vanilla', True), ('patched', False))}
    fig = _boot_both(P, opts, outs, gcmd)
    cmdline = bench_cmdline(opts)
    bloat_text, bloat_total = bloat_report(P.linux, outs['vanilla'], outs['patched'])
    machine = machine_info()
    report = _report(opts, _report_head(opts, cmdline, machine, fig['kernels'], gcmd), fig,
                     bloat_text)
    print(report)
    outdir = RESULTS if opts.readme else os.path.join(P.cache, 'bench')
    os.makedirs(outdir, exist_ok=True)
    write_memory_plot(outdir, fig['rows'], opts.config)
    write_insn_plot(outdir, fig['text'], opts.config)
    with open(os.path.join(outdir, 'report.txt'), 'w') as fh:
        fh.write(report)
    data = _bench_json(opts, cmdline, machine, gcmd, fig, bloat_total)
    _write_json(os.path.join(outdir, 'bench.json'), data)
    if opts.json:
        _write_json(opts.json, data)
        say(f'wrote {opts.json}')
    say(f'wrote {os.path.join(outdir, "report.txt")}, bench.json, memory.dat/png and '
        'insn.dat/png')
    if opts.readme:
        with open(os.path.join(RESULTS, 'README.md'), 'w') as fh:
            fh.write(results_readme(cmdline, report))
        say(f'wrote {os.path.join(RESULTS, "README.md")}')
    leaks = [r for r in fig['rows'] if r['leaked_after_removal']]
    if leaks:
        raise WorkbenchError('memory not returned after removing the instances: '
                             + ', '.join(f'{r["kernel"]} n={r["n"]}' for r in leaks))
