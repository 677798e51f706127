"""The command line of tools/workbench: parses the arguments and calls the one function of
the module that does the command (source.py, kbuild.py, boot.py, testrun.py, series.py,
check.py, bench.py, demo.py, templates.py). Nothing else happens here."""

import argparse
import dataclasses
import sys

from . import bench, boot, check, demo, kbuild, series, source, stress, templates, testrun
from .kconfig import CONFIGS
from .testrun import BUILD_ONLY, EXTENDED_CONFIGS, EXTENDED_EACH_QUICK_CONFIGS, TEST_CONFIGS
from .settings import PACKAGE, Paths
from .util import WorkbenchError

# What `tools/workbench --help` says first.
DESCRIPTION = """tools/workbench: fetch the base source, apply the series, build, boot, test, export.

The kernel work tree and the build outputs live in a cache directory (KWB_CACHE, default
~/.cache/kwb), never in the repository.
"""


def _add_build_boot(sub):
    p = sub.add_parser('build', help='configure from ci/kernel fragments and build bzImage')
    p.add_argument('--vanilla', action='store_true', help='build the base tree without the series')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('-j', '--jobs', type=int)
    p.add_argument('--rustdoc', action='store_true',
                   help="then rustdoc the series' Rust crates (warnings are errors)")
    p = sub.add_parser('boot', help='boot the built kernel in QEMU and run a guest command')
    p.add_argument('--vanilla', action='store_true')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('--exec', metavar='CMD', help='guest shell command (default: uname -a; cat /proc/cmdline)')
    p.add_argument('--append', default='', help='more kernel command line')
    p.add_argument('--vng', action='store_true', help='boot through virtme-ng (config vng)')
    p.add_argument('--timeout', type=int, default=600)
    p.add_argument('-q', '--quiet', action='store_true', help='do not echo the console')
    p.add_argument('--icount', action='store_true',
                   help='count instructions as the bench does (-icount, fixed RTC)')


def _add_test(sub):
    p = sub.add_parser('test', help='run every test layer; ends with "N passed, N failed"')
    p.add_argument('--configs', nargs='+', choices=sorted(CONFIGS),
                   help=f'configs to build and boot, instead of {" ".join(TEST_CONFIGS)} '
                   f'({", ".join(BUILD_ONLY)}: build only)')
    p.add_argument('--extended', action='store_true',
                   help=f'also the configs {" ".join(EXTENDED_CONFIGS)} and the per-patch '
                   f'compile with {" ".join(EXTENDED_EACH_QUICK_CONFIGS)}')
    p.add_argument('--no-each', action='store_true',
                   help='with --extended: skip the per-patch compile (check --each --quick)')
    p.add_argument('--timeout', type=int, default=1800, help='per boot, in seconds')
    p.add_argument('--stress-cycles', type=int, default=200,
                   help='cycles per worker of the stress boot (0: skip it)')


def _add_export_check_demo(sub):
    sub.add_parser('export', help='work-tree commits -> patches/ and the added files')
    p = sub.add_parser('check', help='series applies, added files match, rustfmt, checkpatch '
                       '--strict, Fixes: tags, MAINTAINERS')
    p.add_argument('--each', action='store_true',
                   help='also build the kernel at every patch (in its own build directory)')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS),
                   help='config of the --each builds')
    p.add_argument('--quick', action='store_true',
                   help='with --each: compile only the objects each patch changes')
    p = sub.add_parser('demo', help='build and boot; show the trampolines and their memory')
    p.add_argument('--instances', type=int, default=8)
    p.add_argument('--timeout', type=int, default=900)
    p.add_argument('--force', action='store_true', help='as for apply')


def _add_bench(sub):
    p = sub.add_parser('bench', help='vanilla vs patched, instructions counted: memory, '
                       'permission changes and large-page splits, create/free cost, '
                       'instructions per traced call, boot; a plot')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('--instances', type=int, nargs='+', default=[1, 10, 100, 500, 1000])
    p.add_argument('--cost-instances', type=int, nargs='+', default=[1, 100, 1000],
                   help='N for the create/free cost of instances')
    p.add_argument('--ops', type=int, nargs='+', default=[1, 100, 1000, 10000],
                   help='N for registering/unregistering N ops (ftrace-ops.ko)')
    p.add_argument('--cost-kprobes', type=int, nargs='+', default=[100, 1000],
                   help='N for registering/unregistering N kprobes')
    p.add_argument('--cycles', type=int, default=100,
                   help='create/free cycles of one tracing instance')
    p.add_argument('--text-loops', type=int, default=1000,
                   help='kernel_text_address() calls and stack traces per measurement')
    p.add_argument('--text-ops', type=int, nargs='+', default=[1, 100, 1000],
                   help='ops with a trampoline alive during the text lookups')
    p.add_argument('--call-runs', type=int, default=3, help='runs of each per-call case')
    p.add_argument('--calls', type=int, default=20000, help='traced calls per run')
    p.add_argument('--kprobes', type=int, nargs='+', default=[100, 1000],
                   help='kprobes for the kprobes runs (the largest also for the mix)')
    p.add_argument('--kprobe-rounds', type=int, default=1,
                   help='rounds of the largest kprobes-alone run (add, enable, remove)')
    p.add_argument('--mix-instances', type=int, default=200,
                   help='instances alive during the mixed kprobes run')
    p.add_argument('--json', metavar='FILE', help='also write the rows as JSON')
    p.add_argument('--readme', action='store_true',
                   help='write the report, JSON and plots to results/, with '
                   'results/README.md showing them')
    p.add_argument('--timeout', type=int, default=5400, help='per boot, in seconds')


def _add_send_stress_fixtures(sub):
    p = sub.add_parser('send', help='write the series as an mbox ready for git send-email, '
                       'and check it git-ams onto the base')
    p.add_argument('--dry-run', action='store_true', help='write and check, send nothing')
    p.add_argument('--mbox', metavar='FILE', help='where to write it (default: the cache)')
    p = sub.add_parser('stress', help='stress, hostile input and fault tests on the stress '
                       'config (lockdep, kmemleak, DEBUG_VM, DEBUG_WX, fail_execslot, livepatch)')
    p.add_argument('--cycles', type=int, default=1000,
                   help='cycles per instance and kprobe worker, over all boots')
    p.add_argument('--boots', type=int, default=1, help='split the cycles over this many boots')
    p.add_argument('--seed', type=int, default=1,
                   help='seed of the hostile input of the first boot (boot N: SEED + N - 1)')
    p.add_argument('--hostile', type=int, default=2000, help='kprobe_events writes per boot')
    p.add_argument('--vanilla', action='store_true', help='the vanilla kernel instead')
    p.add_argument('--record', action='store_true',
                   help='also write the record to results/stress.txt')
    p.add_argument('--timeout', type=int, default=3600, help='per boot, in seconds')
    p = sub.add_parser('fixtures', help='write the host tests\' ftrace template fixtures')
    p.add_argument('--configs', nargs='+', default=['default', 'fp', 'mitigations'],
                   choices=sorted(CONFIGS))


def build_parser():
    ap = argparse.ArgumentParser(prog='tools/workbench', description=DESCRIPTION,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', metavar='COMMAND')
    sub.required = True
    sub.add_parser('setup', help='install the toolchain, QEMU and the Debian sources (idempotent)')
    p = sub.add_parser('source', help=f'download {PACKAGE} and commit it as the base work tree')
    p.add_argument('--update', action='store_true', help='download the newest package again')
    p = sub.add_parser('apply', help='reset the work tree to the base and git am patches/series')
    p.add_argument('--force', action='store_true', help='drop work-tree commits not in patches/')
    _add_build_boot(sub)
    _add_test(sub)
    _add_export_check_demo(sub)
    _add_bench(sub)
    _add_send_stress_fixtures(sub)
    return ap


# ---------------------------------------------------------------------------
# Dispatch: each command's arguments to the function that does it.

def _boot(P, a):
    if a.vng:
        boot.vng_boot(source.require_source(P), a.vanilla, a.exec, a.timeout, a.quiet, a.append)
    else:
        boot.boot_command(source.require_source(P), a.vanilla, a.config, a.exec, a.timeout,
                          a.quiet, a.append, a.icount)


def _bench(P, a):
    fields = dataclasses.fields(bench.BenchOptions)
    bench.run_bench(P, bench.BenchOptions(**{f.name: getattr(a, f.name) for f in fields}))


def _stress(P, a):
    fields = dataclasses.fields(stress.StressOptions)
    stress.stress_command(P, stress.StressOptions(**{f.name: getattr(a, f.name)
                                                     for f in fields}))


COMMANDS = {
    'setup': lambda P, a: source.setup(),
    'source': lambda P, a: source.fetch_source(P, a.update),
    'apply': lambda P, a: source.apply_series(P, a.force),
    'build': lambda P, a: kbuild.build_command(P, a.vanilla, a.config, a.jobs, a.rustdoc),
    'boot': _boot,
    'test': lambda P, a: testrun.run_tests(P, a.configs, a.extended, a.no_each, a.timeout,
                                           a.stress_cycles),
    'export': lambda P, a: series.export(P),
    'check': lambda P, a: check.check_command(P, a.each, a.config, a.quick),
    'demo': lambda P, a: demo.demo(P, a.instances, a.timeout, a.force),
    'fixtures': lambda P, a: templates.write_fixtures(P, a.configs),
    'stress': _stress,
    'send': lambda P, a: series.send_command(P, a.dry_run, a.mbox),
    'bench': _bench,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        COMMANDS[args.cmd](Paths.from_env(), args)
    except WorkbenchError as e:
        print(f'workbench: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
