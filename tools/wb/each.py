"""`check --each`: the kernel as every patch of the series leaves it (bisectability),
built whole or, quick, only the objects each patch changes; the kernels of the patches
where the series switches a user over are also booted."""

import os
import time

from .boot import boot_results
from .kbuild import compile_objects, install_modules, make_kernel, patch_objects
from .kconfig import MAINLINE_CONFIGS
from .results import Result
from .util import WorkbenchError, git, one_line

# The patches after which `check --each` also boots the kernel (tools/guest/test.sh):
# where the series switches a user over, with the path the kernel must run from there.
SWITCH_POINTS = {
    'x86/ftrace: Put dynamic trampolines in sub-page execslot slots': 'ftrace',
    'kprobes: Take instruction slots from execslot': 'execslot',
}


def _missing_switch_points(subjects):
    return [Result(f'check --each: switch point "{want}"', False,
                   'no patch of the series has this subject')
            for want in SWITCH_POINTS if want not in subjects]


def _build_patch(P, config, quick, commit, number, total, tip):
    """The kernel (or, quick, the objects the patch changes) at one patch; the build
    directory is each-<config>. Returns (ok, why)."""
    scratch = P.scratch
    out = os.path.join(P.build, f'each-{config}')
    log = os.path.join(P.logs, f'build-each-{config}.log')
    try:
        if quick:
            objs = patch_objects(scratch, commit)
            compile_objects(scratch, out, config, log, objs, f'patch {number}/{total}')
        else:
            make_kernel(scratch, out, config, log, False, f'patch {number}/{total}',
                        verify=(commit == tip))
        return True, ''
    except WorkbenchError as e:
        return False, one_line(e, 500)


def _boot_switch_point(P, config, subject, number, timeout):
    """The kernel at a switch point, booted with tools/guest/test.sh."""
    out = os.path.join(P.build, f'each-{config}')
    log = os.path.join(P.logs, f'build-each-{config}.log')
    path = SWITCH_POINTS[subject]
    if config in MAINLINE_CONFIGS:
        path = 'mainline'
    try:
        install_modules(P.scratch, out, log)
        return boot_results(P, out, P.scratch, config, 'test.sh', timeout,
                            label=f'each-{config}-patch{number}', path=path)
    except WorkbenchError as e:
        return [Result(f'check --each: patch {number} boots', False, one_line(e, 500))]


def each_results(P, config='default', quick=False, timeout=1800):
    """Build the kernel as every patch of the series leaves it (bisectability), in the
    scratch worktree that `check` applied the series to and a build directory of its
    own, so the work tree and its builds are left alone. Options of series.config that
    a patch does not have yet are not checked before the last patch. `quick` compiles,
    at each patch, only the objects of the C and Rust files it changes (the full
    kernel at the tip is what `build` makes), warnings still failing. Without `quick`,
    the kernels of the SWITCH_POINTS patches are also booted with tools/guest/test.sh."""
    scratch = P.scratch
    tip = git('rev-parse', 'HEAD', cwd=scratch)
    commits = git('rev-list', '--reverse', f'base..{tip}', cwd=scratch).split()
    subjects = [git('log', '-1', '--format=%s', c, cwd=scratch) for c in commits]
    results = [] if quick else _missing_switch_points(subjects)
    what = 'compiles' if quick else 'builds'
    try:
        for i, (c, subject) in enumerate(zip(commits, subjects)):
            git('checkout', '-q', '--detach', c, cwd=scratch)
            t0 = time.time()
            ok, why = _build_patch(P, config, quick, c, i + 1, len(commits), tip)
            results.append(Result(
                f'check --each: patch {i + 1} {what} ({config}, {time.time() - t0:.0f}s): '
                f'{subject}', ok, why))
            if ok and not quick and subject in SWITCH_POINTS:
                results += _boot_switch_point(P, config, subject, i + 1, timeout)
    finally:
        git('checkout', '-q', '--detach', tip, cwd=scratch)
    return results
