"""The base source and the work trees: `setup`, `source` (Debian's linux-source package
committed as the base), the vanilla and scratch worktrees, and `apply` (the series
applied with `git am` in the scratch worktree, then moved into the work tree)."""

import glob
import hashlib
import os
import re
import shutil
import subprocess

from .patches import read_series
from .settings import PACKAGE, PATCHES, TOOLS
from .util import GIT_IDENT, WorkbenchError, git, run, say

BASE_DATE = '2026-01-01T00:00:00+0000'


def setup():
    """Install the toolchain, QEMU and the Debian sources (tools/lib/setup.sh)."""
    script = os.path.join(TOOLS, 'lib', 'setup.sh')
    run(['bash', script], what='setup')


def deb_version(deb):
    return run(['dpkg-deb', '-f', deb, 'Version'], capture=True).stdout.strip()


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def base_version(linux):
    """Package version recorded in the base commit, or None if there is no base."""
    if not os.path.isdir(os.path.join(linux, '.git')):
        return None
    p = run(['git', 'log', '-1', '--format=%B', 'base'], cwd=linux, capture=True, check=False)
    if p.returncode != 0:
        return None
    m = re.search(r'^Package-Version: (\S+)$', p.stdout, re.M)
    return m.group(1) if m else None


def _package_debs(P, update):
    """The downloaded packages, after downloading the newest if asked or if none is."""
    os.makedirs(P.deb, exist_ok=True)
    debs = sorted(glob.glob(os.path.join(P.deb, f'{PACKAGE}_*.deb')))
    if update or not debs:
        say(f'downloading {PACKAGE} (apt-get download)')
        run(['apt-get', 'download', PACKAGE], cwd=P.deb, capture=True,
            what=f'apt-get download {PACKAGE} (did `tools/workbench setup` add the Debian sources?)')
        debs = sorted(glob.glob(os.path.join(P.deb, f'{PACKAGE}_*.deb')))
        if not debs:
            raise WorkbenchError(f'apt-get download left no {PACKAGE}_*.deb in {P.deb}')
    return debs


def _unpack(deb, dest):
    """The kernel tarball inside the package, unpacked into `dest`."""
    tarball = f'./usr/src/{PACKAGE}.tar.xz'
    with subprocess.Popen(['dpkg-deb', '--fsys-tarfile', deb], stdout=subprocess.PIPE) as deb_p:
        with subprocess.Popen(['tar', '-xO', tarball], stdin=deb_p.stdout,
                              stdout=subprocess.PIPE) as tar_p:
            deb_p.stdout.close()
            run_p = subprocess.run(['tar', '-xJ', '--strip-components=1', '-C', dest],
                                   stdin=tar_p.stdout)
    if run_p.returncode or tar_p.returncode or deb_p.returncode:
        raise WorkbenchError(f'unpacking {tarball} from {deb} failed')


def _commit_base(tree, version, deb):
    say('committing the base tree (git add of ~90k files takes about a minute)')
    git('init', '-q', '-b', 'base', '.', cwd=tree)
    git('add', '-f', '-A', cwd=tree)
    msg = (f'{PACKAGE} {version}\n\n'
           f'The unpacked source of Debian\'s {PACKAGE} package, committed as the\n'
           f'base of the series by tools/workbench source.\n\n'
           f'Package: {PACKAGE}\nPackage-Version: {version}\nPackage-SHA256: {sha256(deb)}\n')
    # A fixed identity and date make the base commit the same on every machine.
    run(['git', 'commit', '-q', '-F', '-'], cwd=tree, input=msg, what='git commit (base)',
        env={**GIT_IDENT, 'GIT_AUTHOR_DATE': BASE_DATE, 'GIT_COMMITTER_DATE': BASE_DATE})


def fetch_source(P, update=False):
    """`source`: the newest downloaded package committed as the base of P.linux (kept
    if it is already the base); returns its version."""
    debs = _package_debs(P, update)
    versions = {deb_version(d): d for d in debs}
    # The newest package version wins.
    newest = run(['sort', '-V'], input='\n'.join(versions) + '\n', capture=True).stdout.split()[-1]
    deb = versions[newest]
    have = base_version(P.linux)
    if have == newest:
        say(f'base: {PACKAGE} {have} (cached in {P.linux})')
        ensure_worktrees(P)
        return newest
    if have:
        say(f'base was {PACKAGE} {have}; replacing it with {newest}')
    tmp = P.linux + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    say(f'unpacking {os.path.basename(deb)}')
    _unpack(deb, tmp)
    _commit_base(tmp, newest, deb)
    for d in (P.linux, P.vanilla, P.scratch):
        shutil.rmtree(d, ignore_errors=True)
    os.rename(tmp, P.linux)
    ensure_worktrees(P)
    say(f'base: {PACKAGE} {newest} at {git("rev-parse", "base", cwd=P.linux)[:12]}')
    return newest


def _is_worktree(path):
    return os.path.exists(os.path.join(path, '.git')) and run(
        ['git', 'rev-parse', '--git-dir'], cwd=path, capture=True, check=False).returncode == 0


def ensure_worktrees(P):
    """The work tree on branch `series`, and the vanilla and scratch worktrees. A cache
    that was moved (its worktrees' links are absolute paths) is repaired; a worktree
    that is still broken is made again."""
    linux = P.linux
    present = [p for p in (P.vanilla, P.scratch) if os.path.exists(os.path.join(p, '.git'))]
    if present:
        run(['git', 'worktree', 'repair', *present], cwd=linux, capture=True, check=False)
    git('worktree', 'prune', cwd=linux)
    if run(['git', 'rev-parse', '--verify', '-q', 'refs/heads/series'], cwd=linux,
           capture=True, check=False).returncode != 0:
        git('branch', 'series', 'base', cwd=linux)
    if git('rev-parse', '--abbrev-ref', 'HEAD', cwd=linux) != 'series':
        git('checkout', '-q', 'series', cwd=linux)
    for path in (P.vanilla, P.scratch):
        if not _is_worktree(path):
            shutil.rmtree(path, ignore_errors=True)
            git('worktree', 'prune', cwd=linux)
            git('worktree', 'add', '-q', '--detach', path, 'base', cwd=linux)
    van = P.vanilla
    if git('rev-parse', 'HEAD', cwd=van) != git('rev-parse', 'base', cwd=linux):
        git('checkout', '-q', '--detach', 'base', cwd=van)


def require_source(P):
    """P, once its base tree exists (and its worktrees, which this makes)."""
    if base_version(P.linux) is None:
        raise WorkbenchError(f'no base tree in {P.linux}: run `tools/workbench source` first')
    ensure_worktrees(P)
    return P


def apply_in_scratch(P):
    """git am the series onto the base in the scratch worktree; return the commit."""
    series = read_series()
    scratch = P.scratch
    have = base_version(P.linux)
    run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
    git('checkout', '-q', '-f', '--detach', 'base', cwd=scratch)
    git('clean', '-q', '-fdx', cwd=scratch)
    for name in series.patches:
        p = run(['git', 'am', '-q', '--committer-date-is-author-date',
                 os.path.join(PATCHES, name)], cwd=scratch, capture=True, check=False,
                env=GIT_IDENT)
        if p.returncode != 0:
            run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
            raise WorkbenchError(
                f'patches/{name} does not apply onto the base ({PACKAGE} {have}); the series '
                f'was last exported against {PACKAGE} {series.package_version}. Rebase the '
                f'series onto the new base and export it again.\n'
                + (p.stderr or p.stdout).strip()[-1500:])
    return git('rev-parse', 'HEAD', cwd=scratch), series


def _refuse_to_drop_work(linux, commit, force):
    """Raise unless the work tree holds nothing that patches/ does not (or `force`)."""
    if git('status', '--porcelain', '--untracked-files=no', cwd=linux):
        if not force:
            raise WorkbenchError(f'{linux} has uncommitted changes; commit and export them, '
                                 'or use --force to discard them')
    head = git('rev-parse', 'HEAD', cwd=linux)
    known = {git('rev-parse', 'base', cwd=linux)}
    p = run(['git', 'rev-parse', '--verify', '-q', 'refs/wb/applied'], cwd=linux,
            capture=True, check=False)
    if p.returncode == 0:
        known.add(p.stdout.strip())
    same_tree = git('rev-parse', 'HEAD^{tree}', cwd=linux) == git('rev-parse', commit + '^{tree}',
                                                                    cwd=linux)
    if head not in known and not same_tree and not force:
        raise WorkbenchError(f'{linux} has commits that patches/ does not hold; run '
                             '`tools/workbench export` first, or use --force to drop them')


def apply_series(P, force=False):
    """`apply`: the work tree reset to the base with patches/series applied."""
    require_source(P)
    linux = P.linux
    commit, series = apply_in_scratch(P)
    _refuse_to_drop_work(linux, commit, force)
    # checkout -B only rewrites the files that differ, so builds stay incremental.
    git('checkout', '-q', '-f', '-B', 'series', commit, cwd=linux)
    git('update-ref', 'refs/wb/applied', commit, cwd=linux)
    say(f'applied {len(series.patches)} patch(es) onto {PACKAGE} {base_version(linux)}: '
        f'{linux} at {commit[:12]}')


def added_files(tree_dir, commit):
    """The files that `commit` has and the base has not."""
    out = git('diff', '--name-only', '--diff-filter=A', 'base', commit, cwd=tree_dir)
    return [f for f in out.splitlines() if f]
