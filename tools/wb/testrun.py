"""`test` and `stress`: every test layer run as a step (one result line per test, a step
that fails to run being one failure), then "N passed, N failed". The tables below say
which kernels `test` builds and boots, and how; `run_tests` is the order of the layers."""

import os
import re
import time
import unittest

from .boot import boot_results, realtools_results
from .check import check_results
from .each import each_results
from .kbuild import build, nopanic_results, rustdoc_results
from .results import Result, exit_if_failed, print_results, summary_line
from .series import send_results
from .settings import TOOLS
from .source import apply_series, fetch_source, require_source, setup
from .stress import stress_results
from .util import WorkbenchError, run, say

# What `test` builds and boots, in this order, and what `test --extended` adds. The
# first is `vng` (`default` plus what virtme-ng, perf and trace-cmd need), booted twice:
# in QEMU with the initramfs (KUnit, the startup tests, test.sh with the full kprobes
# stress) and through virtme-ng with the host's trace-cmd and perf (realtools.sh).
# `--extended` adds the other layouts and options (-Os, the mitigations kernel on an
# emulated Skylake, KUNIT=m, KPROBES=n, CONFIG_EXECSLOT=n, LLVM with clippy), the
# vanilla vng kernel under the same real tools, and the per-patch compile: on a fresh
# machine `test` must stay under CI's 60-minute budget, and these took it to about 95.
TEST_CONFIGS = ['vng', 'norust']
EXTENDED_CONFIGS = ['os', 'mitigations', 'modules', 'nokprobes', 'noexecslot', 'llvm']
BUILD_ONLY = ('llvm', 'modules', 'nokprobes')
# Besides the first config, where `test` also runs rustdoc: the clippy build.
RUSTDOC_ALSO = ('llvm',)
# Configs whose boots run through virtme-ng too, with realtools.sh.
REAL_TOOLS_CONFIGS = ('vng',)
# The plain boot of these configs runs test.sh in its quick form (wb_quick=1: no
# ftracetest, 50 kprobes): on `norust` it proves that the mainline C paths still work.
QUICK_BOOTS = ('norust',)
EACH_QUICK_CONFIGS = ()
EXTENDED_EACH_QUICK_CONFIGS = ('default', 'llvm')
# Configs that `test` boots in other ways than the plain boot: (label suffix, QEMU CPU
# model, kernel command line). The mitigations kernel on an emulated Skylake, where ITS
# and call-depth tracking are live (QEMU's default CPU is "Not affected", which leaves
# NOPs in the templates): ITS forced on gives "Aligned branch/return thunks", so a
# trampoline returns through a thunk by its address; call-depth stuffing puts a
# %gs-relative RIP operand in the live templates, which the builder must relocate.
# wb_quick=1: test.sh without ftracetest and with a short kprobes stress;
# wb_mitigation=FILE:WORD: test.sh checks that the mitigation is in force.
EXTRA_BOOTS = {
    'mitigations': [
        ('its', 'Skylake-Client',
         'indirect_target_selection=force wb_quick=1 '
         'wb_mitigation=indirect_target_selection:Aligned'),
        ('stuff', 'Skylake-Client',
         'spectre_v2=retpoline retbleed=stuff wb_quick=1 wb_mitigation=retbleed:Stuffing'),
    ],
}


def unit_test_results():
    """The workbench's own unit tests: every tools/wb/test_*.py."""
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.join(TOOLS, 'wb'), pattern='test_*.py',
                            top_level_dir=TOOLS)
    results = []

    class Collect(unittest.TestResult):
        def addSuccess(self, test):
            results.append(Result(f'workbench: {test.id()}', True))

        def addFailure(self, test, err):
            results.append(Result(f'workbench: {test.id()}', False,
                                  self._exc_info_to_string(err, test).strip().splitlines()[-1]))

        addError = addFailure

    suite.run(Collect())
    if not results:
        results.append(Result('workbench: unit tests', False, 'none found'))
    return results


CARGO_TEST_RE = re.compile(r'^test (\S+) \.\.\. (ok|FAILED|ignored)')


def cargo_test_results(label, argv, env=None):
    """One result per test of a `cargo test` run in tools/host."""
    host = os.path.join(TOOLS, 'host')
    p = run(['cargo', 'test', '--locked', *argv, '--', '--color', 'never'], cwd=host,
            capture=True, check=False, env={'CARGO_TERM_COLOR': 'never', **(env or {})})
    results = []
    for line in p.stdout.splitlines():
        m = CARGO_TEST_RE.match(line)
        if m and m.group(2) != 'ignored':
            results.append(Result(f'{label}: {m.group(1)}', m.group(2) == 'ok'))
    if p.returncode != 0 and all(r.ok for r in results):
        results.append(Result(f'{label}: cargo test', False,
                              (p.stderr or p.stdout).strip()[-500:]))
    if not results:
        results.append(Result(f'{label}: cargo test', False, 'no test ran'))
    return results


# The property tests' seed under `test`: the same cases on every run, so that a result
# changes with the code and not with the draw. `cargo test` in tools/host, run by hand,
# draws new cases each time; a failing case it finds is kept in
# tests/*.proptest-regressions, which every later run replays first.
PROPTEST_SEED = '20261202'


def host_test_results():
    """cargo test of tools/host: the pure kernel modules, built from the series' files,
    the property tests at a fixed seed (PROPTEST_SEED); then the loom model check of the
    slot placement (its atomics swapped for loom's under cfg(loom), every interleaving of
    lookups and changes explored), in its own target directory so that the two builds do
    not invalidate each other."""
    return (cargo_test_results('host', [], env={'PROPTEST_RNG_SEED': PROPTEST_SEED}) +
            cargo_test_results('host loom', ['--release', '--test', 'loom',
                                             '--target-dir', 'target/loom'],
                               env={'RUSTFLAGS': '--cfg loom'}))


class Steps:
    """Runs test steps, each producing results; a step that raises becomes one failure."""

    def __init__(self):
        self.results = []
        self.times = []

    def step(self, name, fn, *args, **kwargs):
        """Run fn(*args, **kwargs), which returns results (None: the step passed);
        True unless one of them failed."""
        t0 = time.time()
        say(f'test step: {name}')
        try:
            got = fn(*args, **kwargs)
            if got is None:
                got = [Result(name, True)]
            ok = all(r.ok is not False for r in got)
        except WorkbenchError as e:
            got = [Result(name, False, str(e).replace('\n', ' | ')[:800])]
            ok = False
        print_results(got)
        self.results += got
        self.times.append((name, time.time() - t0))
        return ok

    def action(self, name, fn, *args, **kwargs):
        """A step whose function returns no results (setup, source, apply, build): it
        passes unless it raises WorkbenchError."""
        return self.step(name, _no_results, fn, *args, **kwargs)

    def not_run(self, name, why):
        self.results.append(Result(name, False, why))
        print_results(self.results[-1:])


def _no_results(fn, *args, **kwargs):
    fn(*args, **kwargs)


def _check(P):
    return check_results(require_source(P))


def _send(P):
    return send_results(require_source(P))


def _each_quick(P, config):
    return each_results(require_source(P), config, quick=True)


def _prepare(s, P):
    """setup, the unit and host tests, source, check, send and apply; returns (have the
    source, the series is applied)."""
    s.action('setup', setup)
    s.step('workbench unit tests', unit_test_results)
    s.step('host tests', host_test_results)
    have_source = s.action('source', fetch_source, P, update=False)
    if not have_source:
        return False, False
    s.step('check', _check, P)
    # The mbox that would go to LKML: git-ams onto the base, same tree.
    s.step('send --dry-run', _send, P)
    return True, s.action('apply', apply_series, P, force=False)


def _built_kernel_steps(s, P, config, first, timeout):
    """The steps on the built patched kernel of `config`: rustdoc and the no-panic check
    (on the first config), then its boots unless it is only built."""
    label = f'patched-{config}'
    tree = P.linux
    out = P.build_dir(False, config)
    if first or config in RUSTDOC_ALSO:
        s.step(f'rustdoc {label}', rustdoc_results, tree, out)
    if first:
        s.step(f'no-panic paths {label}', nopanic_results, out)
    if config in BUILD_ONLY:
        return
    if config in EXTRA_BOOTS:
        for suffix, cpu, cmdline in EXTRA_BOOTS[config]:
            s.step(f'boot {label}-{suffix}', boot_results, P, out, tree, config, 'test.sh',
                   timeout, append=cmdline, label=f'patched-{config}-{suffix}', cpu=cpu)
        return
    # The full kprobes stress (1000 kprobes, 2 rounds) on the first kernel only.
    append = 'wb_kprobes=1000 wb_kprobe_rounds=2' if first else ''
    if config in QUICK_BOOTS:
        append = 'wb_quick=1'
    s.step(f'boot {label}', boot_results, P, out, tree, config, 'test.sh', timeout,
           append=append)
    if config in REAL_TOOLS_CONFIGS:
        s.step(f'real tools {label}', realtools_results, P, False, timeout)


def run_tests(P, configs=None, extended=False, no_each=False, timeout=1800,
              stress_cycles=200):
    """`test`: every test layer, one line per test, then "N passed, N failed"; exit
    status 1 if any failed."""
    s = Steps()
    have_source, applied = _prepare(s, P)
    configs = configs or TEST_CONFIGS + (EXTENDED_CONFIGS if extended else [])
    each_configs = EACH_QUICK_CONFIGS + (EXTENDED_EACH_QUICK_CONFIGS if extended else ())
    for config in configs:
        if applied and s.action(f'build patched-{config}', build, P, False, config):
            _built_kernel_steps(s, P, config, config == configs[0], timeout)
        else:
            s.not_run(f'boot patched-{config}', 'not run: no kernel was built')
    # The stress config, short form: lockdep, kmemleak, DEBUG_VM, W+X, fault injection.
    if applied and stress_cycles:
        s.step('stress', _stress_step, P, stress_cycles, timeout)
    # The same real tools on the vanilla kernel: perf's view of its trampolines and
    # kprobe pages, the same checks.
    if extended and have_source and s.action('build vanilla-vng', build, P, True, 'vng'):
        s.step('real tools vanilla-vng', realtools_results, P, True, timeout)
    # Bisectability last, quick form: at each patch, compile what it changes (in the
    # scratch worktree and build/each-<config>), with gcc and with LLVM and clippy.
    # `check --each` builds whole kernels.
    for config in () if not have_source or no_each else each_configs:
        s.step(f'check --each --quick --config {config}', _each_quick, P, config)
    for name, secs in s.times:
        say(f'time: {name}: {secs:.0f}s')
    say(f'time: total {sum(t for _, t in s.times):.0f}s')
    print(summary_line(s.results), flush=True)
    exit_if_failed(s.results)


# The hostile input of `test`'s stress boot: kprobe_events writes (`stress` makes 2000).
TEST_HOSTILE = 500


def _stress_step(P, cycles, timeout):
    """The stress boot of `test`: stress.sh's short form, seed 1, its results."""
    results, _ = stress_results(P, cycles, timeout, hostile=TEST_HOSTILE)
    return results
