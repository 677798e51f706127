"""`stress`: the stress config (lockdep, kmemleak, DEBUG_VM, DEBUG_WX, fail_execslot,
livepatch) booted with tools/guest/stress.sh, in one boot or several, and its record.

A long run is split over boots (`--boots`): each boot runs stress.sh with a share of
the cycles and a seed of its own (SEED + boot - 1), so that each boot's hostile input
differs and any one of them can be replayed with `--seed`. The record of a run (the
boots' figures and results, made from the console logs, never typed in) goes to
$KWB_CACHE/logs/stress-patched.txt (or -vanilla). With `--record`, the boots are added
to results/stress.json, which keeps the boots of one series (a digest of what its
patches change: changed code starts a new record, a reworded changelog does not), so
that a long run can be made of boots on several days; results/stress.txt is written
from all of them. `--vanilla --record` does the same for the base tree, for comparison:
results/stress-vanilla.json keeps the boots of one base (its package version) and
results/stress-vanilla.txt is written from them."""

import dataclasses
import datetime
import hashlib
import json
import os
import time

from .boot import boot_results, splat_excerpts
from .kbuild import build
from .kconfig import kernel_path
from .ktap import figures
from .patches import read_series
from .results import exit_if_failed, print_results, summary_line
from .settings import PATCHES, REPO
from .source import base_version, require_source
from .util import WorkbenchError, run, say

RECORD = os.path.join(REPO, 'results', 'stress.txt')
RECORD_JSON = os.path.join(REPO, 'results', 'stress.json')
RECORD_VANILLA = os.path.join(REPO, 'results', 'stress-vanilla.txt')
RECORD_VANILLA_JSON = os.path.join(REPO, 'results', 'stress-vanilla.json')
BASE_KEY = 'base '  # the key of a vanilla record: 'base ' and the package version
WORKERS = ('inst1', 'inst2', 'kp1', 'kp2', 'ops', 'hotplug', 'lp')
WORKER_TEXT = {
    'inst1': 'tracing instance made, traced, removed',
    'inst2': 'tracing instance made, traced, removed',
    'kp1': 'kprobe added, enabled, disabled, removed',
    'kp2': 'kprobe added, enabled, disabled, removed',
    'ops': 'ftrace-ops.ko unloaded under a kprobe and an instance',
    'hotplug': 'CPU 1 offline and online',
    'lp': 'livepatch-sample enabled, checked, disabled, unloaded',
}


@dataclasses.dataclass(frozen=True)
class StressOptions:
    cycles: int = 1000      # cycles per instance/kprobe worker, over all boots
    boots: int = 1
    seed: int = 1
    hostile: int = 2000     # kprobe_events writes per boot
    vanilla: bool = False
    record: bool = False
    timeout: int = 3600     # per boot


def boot_cycles(cycles, boots):
    """The cycles of each boot: `cycles` split as evenly as the boots allow."""
    if boots < 1 or cycles < boots:
        raise WorkbenchError(f'--cycles {cycles} over --boots {boots}: every boot needs '
                             'at least one cycle')
    return [cycles // boots + (1 if b < cycles % boots else 0) for b in range(boots)]


def stress_results(P, cycles, timeout, seed=1, hostile=2000, vanilla=False, label=None):
    """Build the stress config and boot it once with stress.sh; returns the results
    and the console log's path."""
    out = build(P, vanilla, 'stress')
    label = label or f'{"vanilla" if vanilla else "patched"}-stress'
    results = boot_results(P, out, P.tree(vanilla), 'stress',
                           f'stress.sh {cycles} {seed} {hostile}', timeout, label=label,
                           path=kernel_path(vanilla, 'stress'))
    return results, os.path.join(P.logs, f'boot-{label}.log')


@dataclasses.dataclass
class Boot:
    label: str
    cycles: int
    seed: int
    seconds: float
    passed: int
    failed: int
    figures: list
    failures: list
    date: str = ''
    commit: str = ''
    kernel: str = ''
    hostile: int = 0
    splats: list = dataclasses.field(default_factory=list)


def _boot_record(label, cycles, seed, seconds, results, log_path, **meta):
    with open(log_path, errors='replace') as fh:
        text = fh.read()
    figs = figures(text, 'stress') + figures(text, 'hostile')
    return Boot(label, cycles, seed, seconds, sum(1 for r in results if r.ok is True),
                sum(1 for r in results if r.ok is False), figs,
                [r.line() for r in results if r.ok is False],
                splats=splat_excerpts(text), **meta)


def patch_code(text):
    """What a patch changes in the tree: its diff, without the changelog and the
    headers, so that a reworded changelog keeps the record of the code it describes."""
    at = text.find('\ndiff --git ')
    return text[at + 1:] if at >= 0 else ''


def series_digest():
    """A digest of what the series' patches change (not the cover letter, not the
    changelogs), in order."""
    h = hashlib.sha256()
    for name in read_series().patches:
        with open(os.path.join(PATCHES, name), errors='replace') as fh:
            h.update(patch_code(fh.read()).encode() + b'\0')
    return h.hexdigest()[:16]


def base_key(P):
    """The key of the vanilla record: the base tree's package version."""
    version = base_version(P.linux)
    if version is None:
        raise WorkbenchError(f'no base commit with a package version in {P.linux}: run '
                             'tools/workbench source first')
    return BASE_KEY + version


def load_record(path, digest):
    """The recorded boots of the series `digest` (or base, see base_key()) from `path`,
    or [] (no record, or one of another series)."""
    if not os.path.isfile(path):
        return []
    with open(path) as fh:
        data = json.load(fh)
    if data.get('series') != digest:
        say(f'stress: {path} records another series ({data.get("series")}); starting anew')
        return []
    return [Boot(**b) for b in data.get('boots', [])]


def save_record(path, digest, boots):
    with open(path, 'w') as fh:
        json.dump({'series': digest, 'boots': [dataclasses.asdict(b) for b in boots]}, fh,
                  indent=1)
        fh.write('\n')


def check_seeds(recorded, seed, boots):
    """Refuses seeds that recorded boots of the series already used: a boot that replays
    a hostile sequence adds no new input to the record."""
    used = sorted({b.seed for b in recorded} & set(range(seed, seed + boots)))
    if used:
        free = max(b.seed for b in recorded) + 1
        raise WorkbenchError(f'stress --record: seed(s) {", ".join(map(str, used))} already '
                             f'recorded for this series; start at --seed {free}')


def add_to_record(json_path, text_path, digest, boot):
    """Adds `boot` to the record of the series `digest` and rewrites its text."""
    recorded = load_record(json_path, digest) + [boot]
    save_record(json_path, digest, recorded)
    with open(text_path, 'w') as fh:
        fh.write(record_text(recorded, digest))
    say(f'stress: {len(recorded)} boot(s) recorded in {text_path} and {json_path}')


def worker_totals(boots):
    """{worker: (cycles, errors)} summed over the boots' figures."""
    tot = {w: [0, 0] for w in WORKERS}
    for b in boots:
        for f in b.figures:
            w = f.get('worker')
            if w in tot:
                tot[w][0] += int(f.get('cycles', 0))
                tot[w][1] += int(f.get('errors', 0))
    return {w: tuple(v) for w, v in tot.items()}


def record_text(boots, digest):
    """The text of a record: the boots' totals, then each boot."""
    secs = sum(b.seconds for b in boots)
    kernels = sorted({b.kernel for b in boots})
    if digest.startswith(BASE_KEY):
        what = f'# the base tree ({digest[len(BASE_KEY):]}), without the series.'
    else:
        what = f'# series digest {digest} (what patches/ changes).'
    lines = [
        f'# Written by tools/workbench stress from the console logs of {len(boots)} boot(s);',
        what,
        f'kernel: {", ".join(kernels)}, the stress config (lockdep, kmemleak, DEBUG_VM, '
        'DEBUG_WX,',
        '  fault injection, livepatch), QEMU/TCG, 2 vCPUs',
        f'wall time: {secs:.0f} s ({secs / 3600:.1f} h), boot and KUnit included',
        '',
        'cycles per worker kind, all boots (errors: cycles in which a step failed)',
    ]
    for w, (cycles, errors) in worker_totals(boots).items():
        lines.append(f'  {w:8} {cycles:7} cycles  {errors} errors  ({WORKER_TEXT[w]})')
    hostile = sum(b.hostile for b in boots)
    lines += [f'  hostile  {hostile:7} kprobe_events writes, {hostile // 4} set_ftrace_filter '
              f'writes, {2 * (hostile // 10)} mkdir/rmdir race steps', '', 'boots']
    for b in boots:
        fig = {k: v for f in b.figures for k, v in f.items() if 'worker' not in f}
        lines.append(f'  {b.date} {b.label} (commit {b.commit}): {b.cycles} cycles, seed '
                     f'{b.seed}, {b.seconds:.0f} s (workers {fig.get("workers_seconds", "?")} '
                     f's); {b.passed} passed, {b.failed} failed')
        lines.append(f'    hostile sequences kprobe {fig.get("kprobe_sha", "?")} filter '
                     f'{fig.get("filter_sha", "?")}; accounting (slots/pending/trampolines) '
                     f'{fig.get("accounting_base", "?")} -> {fig.get("accounting_end", "?")}')
        lines += [f'    {f}' for f in b.failures]
        lines += [f'    splat: {x}' for x in b.splats]
    passed = sum(b.passed for b in boots)
    failed = sum(b.failed for b in boots)
    lines += ['', 'Each boot ends with kmemleak (two scans), check_wx_pages and lockdep\'s '
              'debug_locks checked,', 'and its console log searched for splats (lockdep, '
              'WARN, BUG, RCU stalls, hung tasks);', 'those are among the results counted '
              'above.', '', f'{passed} passed, {failed} failed']
    return '\n'.join(lines) + '\n'


def workbench_commit():
    """The repository's commit as a boot starts (its guest scripts are packed then), with
    "+" when tools/ differs from it: the workbench and scripts that ran the boot."""
    commit = run(['git', 'rev-parse', '--short', 'HEAD'], cwd=REPO, capture=True).stdout.strip()
    changed = run(['git', 'status', '--porcelain', '--', 'tools'], cwd=REPO,
                  capture=True).stdout.strip()
    return commit + ('+' if changed else '')


def stress_command(P, opts):
    """`stress`: every boot's results, the record, and the summary line."""
    require_source(P)
    kind = 'vanilla' if opts.vanilla else 'patched'
    if opts.vanilla:
        digest, record_json, record = base_key(P), RECORD_VANILLA_JSON, RECORD_VANILLA
    else:
        digest, record_json, record = series_digest(), RECORD_JSON, RECORD
    shares = boot_cycles(opts.cycles, opts.boots)
    if opts.record:
        check_seeds(load_record(record_json, digest), opts.seed, len(shares))
    all_results, boots = [], []
    for i, cycles in enumerate(shares):
        label = f'{kind}-stress' + (f'-{i + 1}' if opts.boots > 1 else '')
        seed = opts.seed + i
        say(f'stress boot {i + 1}/{opts.boots}: {cycles} cycles, seed {seed}')
        commit = workbench_commit()
        t0 = time.time()
        results, log_path = stress_results(P, cycles, opts.timeout, seed, opts.hostile,
                                           opts.vanilla, label)
        with open(os.path.join(P.build_dir(opts.vanilla, 'stress'), 'include', 'config',
                               'kernel.release')) as fh:
            kernel = f'{kind} {fh.read().strip()}'
        boots.append(_boot_record(label, cycles, seed, time.time() - t0, results, log_path,
                                  date=datetime.datetime.now().strftime('%Y-%m-%d %H:%M'),
                                  commit=commit, kernel=kernel, hostile=opts.hostile))
        print_results(results)
        all_results += results
        if opts.record:
            # After every boot: a run cut short keeps the boots it finished.
            add_to_record(record_json, record, digest, boots[-1])
    dest = os.path.join(P.logs, f'stress-{kind}.txt')
    with open(dest, 'w') as fh:
        fh.write(record_text(boots, digest))
    say(f'stress: wrote {dest}')
    print(summary_line(all_results), flush=True)
    exit_if_failed(all_results)
