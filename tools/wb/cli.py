"""tools/workbench: fetch the base source, apply the series, build, boot, test, export.

The kernel work tree and the build outputs live in a cache directory (KWB_CACHE, default
~/.cache/kwb), never in the repository.
"""

import argparse
import glob
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from . import core
from .core import WorkbenchError
from .cpio import Cpio

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, 'tools')
PATCHES = os.path.join(REPO, 'patches')
CI_KERNEL = os.path.join(REPO, 'ci', 'kernel')
GUEST = os.path.join(TOOLS, 'guest')
GUEST_BIN = os.path.join(TOOLS, 'guest-bin')
GUEST_MOD = os.path.join(TOOLS, 'guest-mod')

# Top-level directories whose files the series may add; the repo keeps a copy of each.
OVERLAY_DIRS = ('arch', 'kernel', 'include', 'Documentation', 'rust', 'lib', 'mm', 'samples')

CONFIGS = {
    'default': ['base.config'],
    'os': ['base.config', 'optimize-size.config'],
    'vng': ['base.config', 'vng.config'],
    'fp': ['base.config', 'fp.config'],
    'mitigations': ['base.config', 'mitigations.config'],
    'stress': ['base.config', 'stress.config'],
    # Without Rust, and with Rust but without the series' option: the mainline C paths.
    'norust': ['base.config', 'norust.config'],
    'noexecslot': ['base.config'],
    # The default config built with the LLVM 19 toolchain, clippy over every Rust object.
    'llvm': ['base.config'],
    # Every KUnit test as a module (KUNIT=m, KUNIT_ALL_TESTS=m): build only.
    'modules': ['base.config', 'kunit-modules.config'],
    # Without kprobes (ftrace trampolines in slots still): build only.
    'nokprobes': ['base.config', 'nokprobes.config'],
}
# make variables of a config's builds: clang and ld.lld 19 (LLVM=-19), and clippy-driver
# for the Rust objects (CLIPPY=1), whose lints fail the build like compiler warnings.
MAKE_VARS = {'llvm': ['LLVM=-19', 'CLIPPY=1']}
# What `test` builds and boots (in this order; the first one also gets the full kprobes
# stress), what it only builds (and documents: rustdoc), and the configs of its quick
# per-patch compile (check --each --quick). `test --extended` adds the CONFIG_EXECSLOT=n
# kernel, the LLVM/clippy build and the per-patch compile with LLVM: about 25 minutes
# more on a fresh machine, which would take `test` too close to CI's 90-minute limit.
TEST_CONFIGS = ['default', 'os', 'norust', 'mitigations', 'modules', 'nokprobes']
EXTENDED_CONFIGS = ['noexecslot', 'llvm']
BUILD_ONLY = ('llvm', 'modules', 'nokprobes')
# Besides the first config, where `test` also runs rustdoc: the clippy build.
RUSTDOC_ALSO = ('llvm',)
EACH_QUICK_CONFIGS = ('default',)
EXTENDED_EACH_QUICK_CONFIGS = ('llvm',)
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
# Patched kernels of these configs keep the mainline C paths (no execslot).
MAINLINE_CONFIGS = ('norust', 'noexecslot')


def kernel_path(vanilla, config):
    """What a kernel must run, for the guest scripts (wb_path= on its command line):
    the series' slots ("execslot") or the mainline C paths ("mainline"); "ftrace"
    (trampolines in slots, kprobes not yet) is for the middle of the series."""
    return 'mainline' if vanilla or config in MAINLINE_CONFIGS else 'execslot'


# The patches after which `check --each` also boots the kernel (tools/guest/test.sh):
# where the series switches a user over, with the path the kernel must run from there.
SWITCH_POINTS = {
    'x86/ftrace: Put dynamic trampolines in sub-page execslot slots': 'ftrace',
    'kprobes: Take instruction slots from execslot': 'execslot',
}

PACKAGE = 'linux-source-7.3'
GIT_IDENT = {
    'GIT_AUTHOR_NAME': 'workbench', 'GIT_AUTHOR_EMAIL': 'workbench@localhost',
    'GIT_COMMITTER_NAME': 'workbench', 'GIT_COMMITTER_EMAIL': 'workbench@localhost',
}
BASE_DATE = '2026-01-01T00:00:00+0000'

# checkpatch messages that the series expects:
# - no Signed-off-by: the person who sends the patches adds it;
# - unknown commit ids: the base tree is Debian's tarball, without upstream history;
# - "added file(s), does MAINTAINERS need updating?" on a patch that adds a file to a
#   directory an earlier patch put under a MAINTAINERS entry: `check` proves instead
#   that every file the series adds is covered (`check: MAINTAINERS covers ...`).
CHECKPATCH_IGNORE = ['MISSING_SIGN_OFF', 'UNKNOWN_COMMIT_ID', 'FILE_PATH_CHANGES']


def cache_dir():
    return os.path.abspath(os.environ.get('KWB_CACHE') or os.path.expanduser('~/.cache/kwb'))


def paths():
    c = cache_dir()
    return {
        'cache': c,
        'deb': os.path.join(c, 'deb'),
        'linux': os.path.join(c, 'linux'),
        'vanilla': os.path.join(c, 'vanilla'),
        'scratch': os.path.join(c, 'scratch'),
        'build': os.path.join(c, 'build'),
        'boot': os.path.join(c, 'boot'),
        'logs': os.path.join(c, 'logs'),
    }


def say(msg):
    print(f'workbench: {msg}', file=sys.stderr, flush=True)


def tool_env():
    env = dict(os.environ)
    cargo_bin = os.path.expanduser('~/.cargo/bin')
    if cargo_bin not in env.get('PATH', '').split(':'):
        env['PATH'] = cargo_bin + ':' + env.get('PATH', '')
    env.setdefault('LIBCLANG_PATH', '/usr/lib/llvm-19/lib')
    return env


def run(cmd, cwd=None, env=None, check=True, capture=False, what=None, log=None, input=None):
    """Run a command; on failure raise WorkbenchError naming it (and its log)."""
    e = tool_env()
    if env:
        e.update(env)
    try:
        if log:
            with open(log, 'ab') as fh:
                p = subprocess.run(cmd, cwd=cwd, env=e, stdout=fh, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        else:
            p = subprocess.run(cmd, cwd=cwd, env=e, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.PIPE if capture else None,
                               text=True)
    except FileNotFoundError:
        raise WorkbenchError(f'{cmd[0]}: not found (run `tools/workbench setup`)')
    if check and p.returncode != 0:
        detail = ''
        if capture:
            detail = (p.stderr or p.stdout or '').strip()[-2000:]
        elif log:
            detail = f'see {log}:\n' + tail(log, 25)
        raise WorkbenchError(f'{what or " ".join(cmd)} failed (exit {p.returncode})'
                             + (f'\n{detail}' if detail else ''))
    return p


def tail(path, n):
    try:
        with open(path, 'rb') as fh:
            lines = fh.read().decode(errors='replace').splitlines()
    except OSError:
        return ''
    return '\n'.join(lines[-n:])


def git(*args, cwd, capture=True, check=True, env=None):
    e = dict(GIT_IDENT)
    if env:
        e.update(env)
    p = run(['git', *args], cwd=cwd, capture=capture, check=check, env=e,
            what='git ' + ' '.join(args))
    return p.stdout.strip() if capture and p.stdout is not None else p


# ---------------------------------------------------------------------------
# setup

def cmd_setup(args):
    script = os.path.join(TOOLS, 'lib', 'setup.sh')
    run(['bash', script], what='setup')


# ---------------------------------------------------------------------------
# source

def deb_version(deb):
    return run(['dpkg-deb', '-f', deb, 'Version'], capture=True).stdout.strip()


def sha256(path):
    h = hashlib.sha256()
    with open(path, 'rb') as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b''):
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


def cmd_source(args):
    P = paths()
    os.makedirs(P['deb'], exist_ok=True)
    debs = sorted(glob.glob(os.path.join(P['deb'], f'{PACKAGE}_*.deb')))
    if args.update or not debs:
        say(f'downloading {PACKAGE} (apt-get download)')
        run(['apt-get', 'download', PACKAGE], cwd=P['deb'], capture=True,
            what=f'apt-get download {PACKAGE} (did `tools/workbench setup` add the Debian sources?)')
        debs = sorted(glob.glob(os.path.join(P['deb'], f'{PACKAGE}_*.deb')))
        if not debs:
            raise WorkbenchError(f'apt-get download left no {PACKAGE}_*.deb in {P["deb"]}')
    versions = {deb_version(d): d for d in debs}
    # The newest package version wins.
    newest = run(['sort', '-V'], input='\n'.join(versions) + '\n', capture=True).stdout.split()[-1]
    deb = versions[newest]
    have = base_version(P['linux'])
    if have == newest:
        say(f'base: {PACKAGE} {have} (cached in {P["linux"]})')
        ensure_worktrees(P)
        return newest
    if have:
        say(f'base was {PACKAGE} {have}; replacing it with {newest}')
    tmp = P['linux'] + '.tmp'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    say(f'unpacking {os.path.basename(deb)}')
    tarball = f'./usr/src/{PACKAGE}.tar.xz'
    with subprocess.Popen(['dpkg-deb', '--fsys-tarfile', deb], stdout=subprocess.PIPE) as deb_p:
        with subprocess.Popen(['tar', '-xO', tarball], stdin=deb_p.stdout,
                              stdout=subprocess.PIPE) as tar_p:
            deb_p.stdout.close()
            run_p = subprocess.run(['tar', '-xJ', '--strip-components=1', '-C', tmp],
                                   stdin=tar_p.stdout)
    if run_p.returncode or tar_p.returncode or deb_p.returncode:
        raise WorkbenchError(f'unpacking {tarball} from {deb} failed')
    say('committing the base tree (git add of ~90k files takes about a minute)')
    git('init', '-q', '-b', 'base', '.', cwd=tmp)
    git('add', '-f', '-A', cwd=tmp)
    msg = (f'{PACKAGE} {newest}\n\n'
           f'The unpacked source of Debian\'s {PACKAGE} package, committed as the\n'
           f'base of the series by tools/workbench source.\n\n'
           f'Package: {PACKAGE}\nPackage-Version: {newest}\nPackage-SHA256: {sha256(deb)}\n')
    # A fixed identity and date make the base commit the same on every machine.
    run(['git', 'commit', '-q', '-F', '-'], cwd=tmp, input=msg, what='git commit (base)',
        env={**GIT_IDENT, 'GIT_AUTHOR_DATE': BASE_DATE, 'GIT_COMMITTER_DATE': BASE_DATE})
    for d in ('linux', 'vanilla', 'scratch'):
        shutil.rmtree(P[d], ignore_errors=True)
    os.rename(tmp, P['linux'])
    ensure_worktrees(P)
    say(f'base: {PACKAGE} {newest} at {git("rev-parse", "base", cwd=P["linux"])[:12]}')
    return newest


def ensure_worktrees(P):
    linux = P['linux']
    git('worktree', 'prune', cwd=linux)
    if run(['git', 'rev-parse', '--verify', '-q', 'refs/heads/series'], cwd=linux,
           capture=True, check=False).returncode != 0:
        git('branch', 'series', 'base', cwd=linux)
    if git('rev-parse', '--abbrev-ref', 'HEAD', cwd=linux) != 'series':
        git('checkout', '-q', 'series', cwd=linux)
    for name in ('vanilla', 'scratch'):
        if not os.path.isdir(os.path.join(P[name], '.git')) and not os.path.isfile(
                os.path.join(P[name], '.git')):
            shutil.rmtree(P[name], ignore_errors=True)
            git('worktree', 'add', '-q', '--detach', P[name], 'base', cwd=linux)
    van = P['vanilla']
    if git('rev-parse', 'HEAD', cwd=van) != git('rev-parse', 'base', cwd=linux):
        git('checkout', '-q', '--detach', 'base', cwd=van)


def require_source():
    P = paths()
    if base_version(P['linux']) is None:
        raise WorkbenchError(f'no base tree in {P["linux"]}: run `tools/workbench source` first')
    ensure_worktrees(P)
    return P


# ---------------------------------------------------------------------------
# apply / export / check

def read_series():
    path = os.path.join(PATCHES, 'series')
    if not os.path.isfile(path):
        raise WorkbenchError('patches/series does not exist')
    with open(path) as fh:
        text = fh.read()
    return core.parse_series(text, set(os.listdir(PATCHES)))


def apply_in_scratch(P):
    """git am the series onto the base in the scratch worktree; return the commit."""
    series = read_series()
    scratch = P['scratch']
    have = base_version(P['linux'])
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


def cmd_apply(args):
    P = require_source()
    linux = P['linux']
    commit, series = apply_in_scratch(P)
    if git('status', '--porcelain', '--untracked-files=no', cwd=linux):
        if not args.force:
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
    if head not in known and not same_tree and not args.force:
        raise WorkbenchError(f'{linux} has commits that patches/ does not hold; run '
                             '`tools/workbench export` first, or use --force to drop them')
    # checkout -B only rewrites the files that differ, so builds stay incremental.
    git('checkout', '-q', '-f', '-B', 'series', commit, cwd=linux)
    git('update-ref', 'refs/wb/applied', commit, cwd=linux)
    say(f'applied {len(series.patches)} patch(es) onto {PACKAGE} {base_version(linux)}: '
        f'{linux} at {commit[:12]}')


def added_files(tree_dir, commit):
    out = git('diff', '--name-only', '--diff-filter=A', 'base', commit, cwd=tree_dir)
    return [f for f in out.splitlines() if f]


def repo_overlay_files():
    files = []
    for d in OVERLAY_DIRS:
        top = os.path.join(REPO, d)
        for root, _, names in os.walk(top):
            for n in names:
                files.append(os.path.relpath(os.path.join(root, n), REPO))
    return sorted(files)


COVER = '0000-cover-letter.patch'
COVER_SOURCE = os.path.join(TOOLS, 'cover-letter.txt')
BENCH_JSON = os.path.join(REPO, 'results', 'bench.json')


def recipients(linux, patch_files):
    """(to, cc) of the series from the base tree's scripts/get_maintainer.pl."""
    p = run(['perl', 'scripts/get_maintainer.pl', '--no-git', '--no-git-fallback',
             *patch_files], cwd=linux, capture=True)
    return core.parse_get_maintainer(p.stdout, core.EXTRA_CC)


def cover_description():
    """tools/cover-letter.txt with @BENCH@ replaced by results/bench.json's figures."""
    with open(COVER_SOURCE) as fh:
        text = fh.read()
    if '@BENCH@' in text:
        if not os.path.isfile(BENCH_JSON):
            raise WorkbenchError('results/bench.json is missing: run '
                                 '`tools/workbench bench --readme` first')
        with open(BENCH_JSON) as fh:
            text = text.replace('@BENCH@', core.bench_summary(json.load(fh)))
    return text


def format_patch_args(linux, patch_files, subject_prefix='PATCH'):
    to, cc = recipients(linux, patch_files)
    desc = os.path.join(tempfile.mkdtemp(prefix='wb-cover-'), 'description')
    with open(desc, 'w') as fh:
        fh.write(cover_description())
    return (['--zero-commit', '--no-signature', '--cover-letter', '--base=base',
             '--cover-from-description=subject', f'--description-file={desc}',
             f'--subject-prefix={subject_prefix}']
            + [f'--to={t}' for t in to] + [f'--cc={c}' for c in cc])


def cover_ident(linux):
    """The series' author and its last commit's date for the cover letter, so that it
    is signed like the patches and the same on every export."""
    name, email, date = git('log', '-1', '--format=%an%n%ae%n%aD', 'HEAD',
                            cwd=linux).splitlines()
    return {'GIT_AUTHOR_NAME': name, 'GIT_AUTHOR_EMAIL': email, 'GIT_AUTHOR_DATE': date,
            'GIT_COMMITTER_NAME': name, 'GIT_COMMITTER_EMAIL': email,
            'GIT_COMMITTER_DATE': date}


def cover_letter(linux, patch_files):
    """patches/0000-cover-letter.patch: subject and text from tools/cover-letter.txt,
    figures from results/bench.json, shortlog, diffstat, base-commit, To/Cc."""
    tmp = tempfile.mkdtemp(prefix='wb-cover-')
    try:
        git('format-patch', '-q', '-o', tmp, *format_patch_args(linux, patch_files),
            'base..HEAD', cwd=linux, env=cover_ident(linux))
        with open(os.path.join(tmp, COVER)) as fh:
            return fh.read()
    finally:
        shutil.rmtree(tmp)


def cmd_export(args):
    P = require_source()
    linux = P['linux']
    if git('status', '--porcelain', '--untracked-files=no', cwd=linux):
        raise WorkbenchError(f'{linux} has uncommitted changes: commit them first')
    # Debian's top-level .gitignore ignores every new file ("/*"): a new source file
    # left out of a commit would silently be missing from the series.
    hidden = git('ls-files', '--others', '--ignored', '--exclude-standard', '--',
                 *OVERLAY_DIRS, cwd=linux).split()
    if hidden:
        raise WorkbenchError('files ignored by the base\'s .gitignore are not committed '
                             '(commit them with `git add -f`): ' + ', '.join(hidden))
    commits = git('rev-list', '--reverse', 'base..HEAD', cwd=linux).split()
    added = added_files(linux, 'HEAD')
    outside = [f for f in added if f.split('/')[0] not in OVERLAY_DIRS]
    if outside:
        raise WorkbenchError('the series adds files outside ' + ', '.join(OVERLAY_DIRS)
                             + ': ' + ', '.join(outside))
    tmp = tempfile.mkdtemp(prefix='wb-export-')
    try:
        if commits:
            git('format-patch', '-q', '--zero-commit', '--no-signature', '-o', tmp, 'base..HEAD',
                cwd=linux)
        os.makedirs(PATCHES, exist_ok=True)
        for old in glob.glob(os.path.join(PATCHES, '[0-9][0-9][0-9][0-9]-*.patch')):
            if not os.path.basename(old).startswith('0000-'):
                os.unlink(old)
        names = sorted(os.listdir(tmp))
        for n in names:
            shutil.copy(os.path.join(tmp, n), os.path.join(PATCHES, n))
        if commits:
            cover = cover_letter(linux, [os.path.join(tmp, n) for n in names])
            with open(os.path.join(PATCHES, COVER), 'w') as fh:
                fh.write(cover)
    finally:
        shutil.rmtree(tmp)
    with open(os.path.join(PATCHES, 'series'), 'w') as fh:
        fh.write(core.format_series([n for n in names if n != COVER], base_version(linux)))
    for f in repo_overlay_files():
        if f not in added:
            os.unlink(os.path.join(REPO, f))
    for f in added:
        dst = os.path.join(REPO, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(linux, f), dst)
    git('update-ref', 'refs/wb/applied', 'HEAD', cwd=linux)
    say(f'exported {len(names)} patch(es) and {len(added)} added file(s) into {REPO}')


def check_results(P):
    """Apply the series to a clean base; compare the added files; checkpatch each patch."""
    results = []
    try:
        commit, series = apply_in_scratch(P)
    except WorkbenchError as e:
        return [core.Result('check: series applies', False, str(e).splitlines()[0])]
    results.append(core.Result(f'check: series applies ({len(series.patches)} patches)', True))
    scratch = P['scratch']
    added = added_files(scratch, commit)
    for f in added:
        mine = os.path.join(REPO, f)
        if not os.path.isfile(mine):
            results.append(core.Result(f'check: overlay {f}', False, 'missing in the repo'))
            continue
        with open(mine, 'rb') as a, open(os.path.join(scratch, f), 'rb') as b:
            same = a.read() == b.read()
        results.append(core.Result(f'check: overlay {f}', same,
                                   '' if same else 'differs from the patched tree'))
    for f in repo_overlay_files():
        if f not in added:
            results.append(core.Result(f'check: overlay {f}', False,
                                       'in the repo but not added by the series'))
    # Every Rust file as each patch leaves it is rustfmt-clean (the kernel's .rustfmt.toml).
    # rustfmt follows `mod` items and reports nothing on standard input, so each check
    # runs on a copy of the directories of the files that patch changes (with their
    # subdirectories, where the modules of a crate root live) as that patch leaves them.
    for commit in git('rev-list', '--reverse', f'base..{commit}', cwd=scratch).split():
        subject = git('log', '-1', '--format=%s', commit, cwd=scratch)
        changed = [f for f in git('diff-tree', '--no-commit-id', '--name-only', '-r',
                                  '--diff-filter=AM', commit, cwd=scratch).split()
                   if f.endswith('.rs')]
        if not changed:
            continue
        with tempfile.TemporaryDirectory() as d:
            dirs = sorted({os.path.dirname(f) or '.' for f in changed})
            archive = subprocess.run(['git', 'archive', '--format=tar', commit, '--', *dirs],
                                     cwd=scratch, capture_output=True, check=True).stdout
            subprocess.run(['tar', '-x', '-C', d], input=archive, check=True)
            for f in changed:
                p = run(['rustfmt', '--color', 'never', '--edition', '2021', '--config-path',
                         os.path.join(scratch, '.rustfmt.toml'), '--check',
                         os.path.join(d, f)], capture=True, check=False)
                results.append(core.Result(f'rustfmt {f} in "{subject}"', p.returncode == 0,
                                           (p.stdout + p.stderr).strip()[:300]))
    # And kbuild's own check over the whole tree at the tip, as a maintainer runs it.
    with tempfile.TemporaryDirectory() as d:
        p = run(['make', '-s', f'O={d}', 'LLVM=-19', 'rustfmtcheck'], cwd=scratch,
                capture=True, check=False)
    results.append(core.Result('make LLVM=-19 rustfmtcheck', p.returncode == 0,
                               ' '.join((p.stdout + p.stderr).split())[:500]))
    def base_file(path):
        return git('show', f'base:{path}', cwd=scratch)
    for name in series.patches:
        # Fixes: tags against what the public record says those commits did.
        with open(os.path.join(PATCHES, name)) as fh:
            text = fh.read()
        fixes = core.parse_fixes(text)
        for tag in fixes:
            why = core.check_fixes(tag, base_file)
            results.append(core.Result(f'check: {name} Fixes: {tag[0][:12]}', why is None,
                                       why or ''))
        if fixes:
            results.append(core.Result(f'check: {name} Cc: stable with its Fixes:',
                                       'Cc: stable@vger.kernel.org' in core.changelog(text)))
        p = run(['perl', 'scripts/checkpatch.pl', '--strict', '--no-summary', '--terse',
                 '--ignore', ','.join(CHECKPATCH_IGNORE), os.path.join(PATCHES, name)],
                cwd=scratch, capture=True, check=False)
        msgs = [ln for ln in p.stdout.splitlines() if re.search(r'\b(ERROR|WARNING|CHECK):', ln)]
        results.append(core.Result(f'checkpatch --strict {name}', p.returncode == 0 and not msgs,
                                   '; '.join(msgs)[:500]))
    for f in added_files(scratch, 'HEAD'):
        p = run(['perl', 'scripts/get_maintainer.pl', '--no-git', '--no-git-fallback',
                 '--sections', '-f', f], cwd=scratch, capture=True, check=False)
        sections = core.maintainer_sections(p.stdout)
        results.append(core.Result(f'check: MAINTAINERS covers {f}',
                                   p.returncode == 0 and bool(sections),
                                   'only THE REST' if p.returncode == 0 else p.stderr[:300]))
    return results


def cmd_check(args):
    P = require_source()
    results = check_results(P)
    if args.each and all(r.ok is not False for r in results[:1]):
        results += each_results(P, args.config, quick=args.quick)
    for r in results:
        print(r.line(), flush=True)
    print(core.summary_line(results))
    if any(r.ok is False for r in results):
        raise SystemExit(1)


# ---------------------------------------------------------------------------
# build

def build_dir(P, vanilla, config):
    return os.path.join(P['build'], f'{"vanilla" if vanilla else "patched"}-{config}')


# Merged last into every patched build: the options the series adds.
SERIES_FRAGMENT = 'series.config'
# The series' options per config, for patched builds (default: SERIES_FRAGMENT).
SERIES_FRAGMENTS = {
    'stress': [SERIES_FRAGMENT, 'stress-series.config'],
    'norust': ['norust-series.config'],
    'noexecslot': ['noexecslot-series.config'],
    'modules': ['modules-series.config'],
}


def fragments(config, vanilla=False):
    if config not in CONFIGS:
        raise WorkbenchError(f'unknown config {config!r}; known: {", ".join(CONFIGS)}')
    out = []
    series = [] if vanilla else SERIES_FRAGMENTS.get(config, [SERIES_FRAGMENT])
    for f in CONFIGS[config] + series:
        path = os.path.join(CI_KERNEL, f)
        if not os.path.isfile(path):
            raise WorkbenchError(f'config fragment {path} is missing')
        out.append(path)
    return out


def make_cmd(out, *targets, jobs=None):
    """make in build directory `out`, named `<kind>-<config>` (build_dir(), each-<config>),
    with the make variables of its config."""
    config = os.path.basename(os.path.normpath(out)).split('-', 1)[-1]
    cmd = ['make', f'O={out}', *MAKE_VARS.get(config, [])]
    if jobs:
        cmd.append(f'-j{jobs}')
    return cmd + list(targets)


def configure(tree, out, config, log, vanilla, verify=True):
    frags = fragments(config, vanilla)
    os.makedirs(out, exist_ok=True)
    run(make_cmd(out, 'rustavailable'), cwd=tree, log=log,
        what='make rustavailable (Rust toolchain for the kernel; run `tools/workbench setup`)')
    run(make_cmd(out, 'tinyconfig'), cwd=tree, log=log, what='make tinyconfig')
    run(['scripts/kconfig/merge_config.sh', '-m', '-O', out, os.path.join(out, '.config'),
         *frags], cwd=tree, log=log, what='merge_config.sh')
    run(make_cmd(out, 'olddefconfig'), cwd=tree, log=log, what='make olddefconfig')
    if not verify:
        return
    texts = []
    for f in frags:
        with open(f) as fh:
            texts.append((os.path.relpath(f, REPO), fh.read()))
    with open(os.path.join(out, '.config')) as fh:
        problems = core.verify_config(texts, fh.read())
    if problems:
        raise WorkbenchError('Kconfig dropped options the fragments ask for:\n  '
                             + '\n  '.join(problems))


def progress_wait(proc, log, label, interval=30):
    start = time.time()
    while True:
        try:
            proc.wait(timeout=interval)
            return proc.returncode
        except subprocess.TimeoutExpired:
            last = ''
            for ln in reversed(tail(log, 5).splitlines()):
                if ln.strip():
                    last = ln.strip()[:100]
                    break
            say(f'{label}: {int(time.time() - start)}s ... {last}')


def run_make(tree, out, targets, log, label, jobs=None):
    """Run make for `targets` in `out`, appending to `log`; fail on an error or on any
    compiler warning (the base builds without one; so must everything the series adds,
    and an incremental build recompiles exactly what changed)."""
    jobs = jobs or os.cpu_count() or 2
    say(f'{label}: make {" ".join(targets)} in {out} (-j{jobs}, log {log})')
    with open(log, 'ab') as fh:
        proc = subprocess.Popen(make_cmd(out, *targets, jobs=jobs), cwd=tree,
                                env=tool_env(), stdout=fh, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
        rc = progress_wait(proc, log, label)
    if rc != 0:
        raise WorkbenchError(f'{label} failed (exit {rc}); see {log}:\n' + tail(log, 30))
    with open(log, errors='replace') as fh:
        warnings = core.compiler_warnings(fh.read())
    if warnings:
        raise WorkbenchError(f'{label} has {len(warnings)} warning(s); see {log}:\n'
                             + '\n'.join(warnings[:10]))


def make_kernel(tree, out, config, log, vanilla, label, jobs=None, verify=True):
    """Configure and build bzImage and modules of `tree` in `out`."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'w'):
        pass
    configure(tree, out, config, log, vanilla, verify=verify)
    run_make(tree, out, ['bzImage', 'modules'], log, f'build {label}', jobs=jobs)


def rust_crate_object(tree, f):
    """The object that compiles the Rust file `f`: that of its crate root. A module
    dir/bar.rs belongs to the crate dir.rs (kbuild compiles it into dir.o) or, in a
    directory crate, to dir/<name of dir>.rs (mm/execslot/slots.rs to
    mm/execslot/execslot.o)."""
    stem = f[:-len('.rs')]
    while True:
        d = os.path.dirname(stem)
        if not d:
            break
        inner = os.path.join(d, os.path.basename(d))
        if stem != inner and os.path.exists(os.path.join(tree, inner + '.rs')):
            stem = inner
        elif os.path.exists(os.path.join(tree, d + '.rs')):
            stem = d
        else:
            break
    return stem + '.o'


def object_of(tree, f):
    """The object that compiles the changed file `f`, or None: foo.c gives foo.o, a Rust
    file the object of its crate root, a file of the kernel crate (its modules, the
    bindings' header, the C helpers) rust/kernel.o."""
    if f.startswith(('tools/', 'Documentation/', 'samples/')):
        return None
    if f.startswith(('rust/kernel/', 'rust/bindings/', 'rust/helpers/')) and \
            f.endswith(('.rs', '.h', '.c')):
        return 'rust/kernel.o'
    if f.startswith('rust/'):
        return None
    if f.endswith('.c'):
        return f[:-len('.c')] + '.o'
    if f.endswith('.rs') and os.path.exists(os.path.join(tree, f)):
        return rust_crate_object(tree, f)
    return None


def patch_objects(tree, commit):
    """The objects that compile the C and Rust files `commit` adds or changes (see
    object_of())."""
    objs = []
    for f in git('diff-tree', '--no-commit-id', '--name-only', '-r', '--diff-filter=AM',
                 commit, cwd=tree).split():
        o = object_of(tree, f)
        if o:
            objs.append(o)
    return sorted(set(objs))


def series_rust_objects(tree):
    """The objects of the Rust crates the series adds outside rust/ (their roots:
    mm/execslot/execslot.rs gives mm/execslot/execslot.o)."""
    objs = []
    for f in git('diff', '--name-only', '--diff-filter=A', 'base..HEAD', '--', '*.rs',
                 cwd=tree).split():
        if not f.startswith(('rust/', 'tools/', 'samples/')):
            objs.append(rust_crate_object(tree, f))
    return sorted(set(objs))


def rustdoc_argv(cmd_line, crate, outdir):
    """The rustdoc command documenting, private items included, the crate that the
    kbuild command `cmd_line` (the `savedcmd_` line of its .o.cmd file, `rustc` or
    `clippy-driver`) compiles, with warnings (broken intra-doc links, missing docs, ...)
    as errors. Returns (environment, argv)."""
    args = shlex.split(cmd_line.split(':=', 1)[1])
    env = {'RUSTC_BOOTSTRAP': '1'}  # as kbuild sets it: the kernel uses -Z flags
    while args and '=' in args[0] and not args[0].startswith('-'):
        k, v = args.pop(0).split('=', 1)
        env[k] = v
    if not args or os.path.basename(args[0]) not in ('rustc', 'clippy-driver'):
        raise WorkbenchError(f'not a rustc command: {cmd_line[:200]}')
    argv, it = ['rustdoc'], iter(args[1:])
    for a in it:
        if a == '--out-dir':
            next(it, None)
        elif not a.startswith(('--emit', '--out-dir=', '-Zbinary_dep_depinfo',
                               '--remap-path')):
            argv.append(a)
    return env, argv + ['--crate-name', crate, '--document-private-items', '-Dwarnings',
                        '-o', outdir]


def rustdoc_results(tree, out):
    """rustdoc of every Rust crate the series adds, with the flags kbuild compiled it
    with (kbuild's `rustdoc` target covers only rust/); HTML in out/Documentation/output/
    rust/series. One result per crate."""
    results = []
    outdir = os.path.join(out, 'Documentation', 'output', 'rust', 'series')
    for obj in series_rust_objects(tree):
        name = f'rustdoc: {obj[:-2]}.rs'
        d, b = os.path.split(obj)
        cmdf = os.path.join(out, d, f'.{b}.cmd')
        if not os.path.isfile(cmdf):
            results.append(core.Result(name, False, f'{cmdf} missing: build the kernel first'))
            continue
        with open(cmdf) as fh:
            env, argv = rustdoc_argv(fh.readline(), b[:-2], outdir)
        p = run(argv, cwd=out, capture=True, check=False, env=env)
        results.append(core.Result(name, p.returncode == 0,
                                   ' '.join((p.stderr or p.stdout).split())[:600]))
    if not results:
        results.append(core.Result('rustdoc', False, 'the series adds no Rust crate'))
    return results


# The functions of the series that must never panic: the lock-free lookups (unwinder,
# NMI), the kallsyms walk and every path that frees a slot. `nopanic_results()` follows
# their calls through Rust functions in vmlinux and fails on any call that can reach a
# panic (overflow and bounds checks included, with CONFIG_RUST_OVERFLOW_CHECKS=y).
NOPANIC_ROOTS = ('__execslot_contains', '__execslot_lookup', '__execslot_get_kallsym',
                 'execslot_free_locked', 'execslot_free_deferred', 'execslot_reap_locked')
# The lock-free lookups, which the unwinder calls in any context (NMI, kprobe handlers):
# placed in _kprobe_blacklist, and built so that they call nothing.
LEAF_ROOTS = ('__execslot_contains', '__execslot_lookup')


def nopanic_results(out):
    vmlinux = os.path.join(out, 'vmlinux')
    p = run(['objdump', '-d', '--no-show-raw-insn', vmlinux], capture=True)
    graph = core.call_graph(p.stdout)
    results = []
    for root, chain in core.panic_paths(graph, NOPANIC_ROOTS).items():
        results.append(core.Result(f'no panic reachable from {root}', chain is None,
                                   '' if chain is None else ' -> '.join(chain)[:600]))
    for root, calls in core.non_leaf_calls(graph, LEAF_ROOTS).items():
        results.append(core.Result(f'{root} calls no function (its kprobe blacklist entry '
                                   f'covers all its code; no __fentry__)', not calls,
                                   ', '.join(calls)[:600]))
    return results


def compile_objects(tree, out, config, log, objs, label):
    """Configure `out` for `tree` and compile `objs` (nothing to do if empty)."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'w'):
        pass
    configure(tree, out, config, log, False, verify=False)
    if objs:
        run_make(tree, out, objs, log, f'compile {label}')


def each_results(P, config='default', quick=False, timeout=1800):
    """Build the kernel as every patch of the series leaves it (bisectability), in the
    scratch worktree that `check` applied the series to and a build directory of its
    own, so the work tree and its builds are left alone. Options of series.config that
    a patch does not have yet are not checked before the last patch. `quick` compiles,
    at each patch, only the objects of the C and Rust files it changes (the full
    kernel at the tip is what `build` makes), warnings still failing. Without `quick`,
    the kernels of the SWITCH_POINTS patches are also booted with tools/guest/test.sh."""
    scratch = P['scratch']
    tip = git('rev-parse', 'HEAD', cwd=scratch)
    out = os.path.join(P['build'], f'each-{config}')
    log = os.path.join(P['logs'], f'build-each-{config}.log')
    commits = git('rev-list', '--reverse', f'base..{tip}', cwd=scratch).split()
    results = []
    subjects = [git('log', '-1', '--format=%s', c, cwd=scratch) for c in commits]
    if not quick:
        for want in SWITCH_POINTS:
            if want not in subjects:
                results.append(core.Result(f'check --each: switch point "{want}"', False,
                                           'no patch of the series has this subject'))
    try:
        for i, c in enumerate(commits):
            subject = subjects[i]
            git('checkout', '-q', '--detach', c, cwd=scratch)
            t0 = time.time()
            try:
                if quick:
                    objs = patch_objects(scratch, c)
                    compile_objects(scratch, out, config, log, objs,
                                    f'patch {i + 1}/{len(commits)}')
                else:
                    make_kernel(scratch, out, config, log, False,
                                f'patch {i + 1}/{len(commits)}', verify=(c == tip))
                ok, why = True, ''
            except WorkbenchError as e:
                ok, why = False, ' '.join(str(e).split())[:500]
            what = 'compiles' if quick else 'builds'
            results.append(core.Result(
                f'check --each: patch {i + 1} {what} ({config}, {time.time() - t0:.0f}s): '
                f'{subject}', ok, why))
            if ok and not quick and subject in SWITCH_POINTS:
                path = SWITCH_POINTS[subject]
                if config in MAINLINE_CONFIGS:
                    path = 'mainline'
                try:
                    install_modules(scratch, out, log)
                    results += boot_results(P, out, scratch, config, 'test.sh', timeout,
                                            label=f'each-{config}-patch{i + 1}', path=path)
                except WorkbenchError as e:
                    results.append(core.Result(f'check --each: patch {i + 1} boots', False,
                                               ' '.join(str(e).split())[:500]))
    finally:
        git('checkout', '-q', '--detach', tip, cwd=scratch)
    return results


def cmd_build(args):
    P = require_source()
    out = build(P, args.vanilla, args.config, args.jobs)
    if args.rustdoc:
        if args.vanilla:
            raise WorkbenchError('--rustdoc documents the series\' Rust crates: not with --vanilla')
        results = rustdoc_results(P['linux'], out)
        for r in results:
            print(r.line(), flush=True)
        if any(r.ok is False for r in results):
            raise SystemExit(1)
    return out


def install_modules(tree, out, log):
    """modules_install into out/modinstall, which the guest's initramfs takes."""
    mods = os.path.join(out, 'modinstall')
    shutil.rmtree(mods, ignore_errors=True)
    run(make_cmd(out, 'modules_install', f'INSTALL_MOD_PATH={mods}', 'INSTALL_MOD_STRIP=1'),
        cwd=tree, log=log, what='make modules_install')


def guest_modules(P, tree, out):
    """Builds the bench's modules (tools/guest-mod/) against the kernel in `out` and
    installs them beside its own (modinstall/lib/modules/*/updates/), where the guest
    finds them."""
    src = os.path.join(P['cache'], 'guest-mod', os.path.basename(os.path.normpath(out)))
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(GUEST_MOD, src)
    log = os.path.join(P['logs'], f'guest-mod-{os.path.basename(os.path.normpath(out))}.log')
    run(make_cmd(out, f'M={src}', 'modules'), cwd=tree, log=log,
        what=f'make M={src} modules')
    run(make_cmd(out, f'M={src}', 'modules_install',
                 f'INSTALL_MOD_PATH={os.path.join(out, "modinstall")}', 'INSTALL_MOD_STRIP=1'),
        cwd=tree, log=log, what=f'make M={src} modules_install')


def build(P, vanilla, config, jobs=None):
    tree = P['vanilla'] if vanilla else P['linux']
    out = build_dir(P, vanilla, config)
    kind = 'vanilla' if vanilla else 'patched'
    log = os.path.join(P['logs'], f'build-{kind}-{config}.log')
    t0 = time.time()
    make_kernel(tree, out, config, log, vanilla, f'{kind} {config}', jobs=jobs)
    install_modules(tree, out, log)
    say(f'built {kind} {config} in {time.time() - t0:.0f}s: {out}/arch/x86/boot/bzImage')
    return out


# ---------------------------------------------------------------------------
# boot

INIT = r'''#!/bin/sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mkdir -p /proc /sys /dev /tmp /root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null
ln -sf /proc/self/fd /dev/fd 2>/dev/null
cd /root
echo WB-GUEST-START
sh /wb/cmd.sh
echo "WB-GUEST-EXIT $?"
sync
reboot -f
'''


def guest_binaries(P):
    """Compile each tools/guest-bin/NAME.c into a static binary for the guest (busybox has
    no perf_event_open); returns {NAME: path}, rebuilt when the source is newer."""
    outdir = os.path.join(P['cache'], 'guest-bin')
    os.makedirs(outdir, exist_ok=True)
    bins = {}
    for f in sorted(os.listdir(GUEST_BIN)):
        if not f.endswith('.c'):
            continue
        src = os.path.join(GUEST_BIN, f)
        exe = os.path.join(outdir, f[:-2])
        if not os.path.isfile(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
            run(['gcc', '-static', '-O2', '-Wall', '-Wextra', '-Werror', '-o', exe, src],
                what=f'gcc {f}')
        bins[f[:-2]] = exe
    return bins


def build_initramfs(P, out, tree, cmd, dest):
    c = Cpio()
    for d in ('bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'root',
              'etc', 'lib', 'wb'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.chardev('dev/null', 1, 3, 0o666)
    busybox = shutil.which('busybox') or '/bin/busybox'
    if not os.path.isfile(busybox):
        raise WorkbenchError('busybox not found (busybox-static; run `tools/workbench setup`)')
    with open(busybox, 'rb') as fh:
        c.file('bin/busybox', fh.read(), 0o755)
    c.symlink('bin/sh', 'busybox')
    c.file('init', INIT.encode(), 0o755)
    c.file('etc/passwd', b'root:x:0:0:root:/root:/bin/sh\n')
    for f in sorted(os.listdir(GUEST)):
        with open(os.path.join(GUEST, f), 'rb') as fh:
            c.file(f'wb/{f}', fh.read(), 0o755)
    c.file('wb/cmd.sh', (cmd + '\n').encode(), 0o755)
    for name, exe in guest_binaries(P).items():
        with open(exe, 'rb') as fh:
            c.file(f'usr/bin/{name}', fh.read(), 0o755)
    mods = os.path.join(out, 'modinstall', 'lib', 'modules')
    if os.path.isdir(mods):
        c.tree(mods, 'lib/modules')
    ftrace_st = os.path.join(tree, 'tools', 'testing', 'selftests', 'ftrace')
    if os.path.isdir(ftrace_st):
        c.dir('selftests')
        c.tree(ftrace_st, 'selftests/ftrace')
    with open(dest, 'wb') as fh:
        fh.write(c.bytes())


class BootResult:
    def __init__(self, log_path, text, timed_out, exit_status, elapsed):
        self.log_path = log_path
        self.text = text
        self.timed_out = timed_out
        self.exit_status = exit_status
        self.elapsed = elapsed
        self.splats = core.find_splats(text)

    def problems(self):
        out = []
        if self.timed_out:
            out.append(f'timed out after {self.elapsed:.0f}s')
        if self.exit_status is None and not self.timed_out:
            out.append('the guest command never finished (kernel died?)')
        elif self.exit_status:
            out.append(f'the guest command exited {self.exit_status}')
        for kind, line in self.splats[:5]:
            out.append(f'{kind}: {line}')
        return out


# Deterministic guests: one TCG thread runs both vCPUs and the guest clock advances one
# nanosecond per instruction executed (shift=0); sleep=off lets an idle guest jump to its
# next timer at once. tsc=reliable: with two sockets the kernel would otherwise distrust
# the TSC and keep time in jiffies (4 ms steps).
ICOUNT_ARGS = ['-icount', 'shift=0,sleep=off']
ICOUNT_APPEND = ' tsc=reliable'


def qemu_boot(P, out, tree, cmd, name, timeout, path, echo=False, append='', cpu=None,
              icount=False):
    """Boot `out`'s bzImage with an initramfs running `cmd`; `path` is the
    kernel_path() the guest scripts check the kernel against. With `icount`, the guest
    clock counts instructions (ICOUNT_ARGS)."""
    bz = os.path.join(out, 'arch', 'x86', 'boot', 'bzImage')
    if not os.path.isfile(bz):
        raise WorkbenchError(f'{bz} does not exist: run `tools/workbench build` first')
    qemu = shutil.which('qemu-system-x86_64')
    if not qemu:
        raise WorkbenchError('qemu-system-x86_64 not found (run `tools/workbench setup`)')
    os.makedirs(P['boot'], exist_ok=True)
    os.makedirs(P['logs'], exist_ok=True)
    initrd = os.path.join(P['boot'], f'{name}.cpio')
    build_initramfs(P, out, tree, cmd, initrd)
    log_path = os.path.join(P['logs'], f'boot-{name}.log')
    # -accel tcg: a nested KVM guest hangs at kernel entry on these machines.
    # Two sockets: without ACPI the kernel sees only the CPUs in SeaBIOS's MP table,
    # which lists one per socket ("-smp 2" alone boots one CPU).
    argv = [qemu, '-accel', 'tcg', '-m', '2048', '-smp', '2,sockets=2,cores=1',
            *(['-cpu', cpu] if cpu else []), *(ICOUNT_ARGS if icount else []),
            '-nographic', '-no-reboot',
            '-monitor', 'none', '-serial', 'stdio', '-kernel', bz, '-initrd', initrd,
            '-append', f'console=ttyS0 panic=-1 oops=panic loglevel=7 wb_path={path} '
            f'{append}{ICOUNT_APPEND if icount else ""}'.strip()]
    say(f'booting {name} under QEMU/TCG (timeout {timeout}s, console log {log_path})')
    t0 = time.time()
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    chunks = []

    def reader():
        with open(log_path, 'wb') as fh:
            for line in proc.stdout:
                fh.write(line)
                fh.flush()
                chunks.append(line)
                if echo:
                    sys.stdout.write(line.decode(errors='replace'))
                    sys.stdout.flush()

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        proc.kill()
        proc.wait()
    t.join(timeout=10)
    text = b''.join(chunks).decode(errors='replace')
    return BootResult(log_path, text, timed_out, core.guest_exit_status(text), time.time() - t0)


def cmd_boot(args):
    P = require_source()
    if args.vng:
        return vng_boot(P, args)
    tree = P['vanilla'] if args.vanilla else P['linux']
    out = build_dir(P, args.vanilla, args.config)
    cmd = args.exec or 'uname -a; cat /proc/cmdline'
    name = f'{"vanilla" if args.vanilla else "patched"}-{args.config}'
    res = qemu_boot(P, out, tree, cmd, name, args.timeout,
                    kernel_path(args.vanilla, args.config), echo=not args.quiet,
                    append=args.append)
    problems = res.problems()
    if problems:
        raise WorkbenchError(f'boot {name} failed ({res.log_path}):\n  ' + '\n  '.join(problems))
    say(f'boot {name}: guest command exited 0 in {res.elapsed:.0f}s; no splat in the log')


def vng_boot(P, args):
    venv = os.path.join(P['cache'], 'venv-vng')
    vng = os.path.join(venv, 'bin', 'vng')
    if not os.path.isfile(vng):
        say('installing virtme-ng into ' + venv)
        run([sys.executable, '-m', 'venv', venv], what='python3 -m venv')
        run([os.path.join(venv, 'bin', 'pip'), 'install', '-q', 'virtme-ng'],
            what='pip install virtme-ng')
    out = build_dir(P, args.vanilla, 'vng')
    bz = os.path.join(out, 'arch', 'x86', 'boot', 'bzImage')
    if not os.path.isfile(bz):
        raise WorkbenchError(f'{bz} does not exist: run `tools/workbench build --config vng`')
    cmd = args.exec or 'uname -a'
    env = {'PATH': os.path.join(venv, 'bin') + ':' + tool_env()['PATH']}
    # No KVM (it hangs here), 9p rather than virtiofs, PCI virtio rather than microvm's
    # MMIO: what the vng config fragment provides. 7.3 needs the 9p tag as root=.
    # virtme-ng-init finds no virtio-serial port for the script's exit status without
    # udev on this host ("console fallback", vng exits 255), so the status travels on
    # the console like in `boot`.
    argv = [vng, '--run', bz, '--disable-kvm', '--force-9p', '--disable-microvm',
            '--memory', '2G', '--verbose',
            '--append', f'root=/dev/root wb_path={kernel_path(args.vanilla, "vng")}',
            '--exec', f'{cmd}; echo "WB-GUEST-EXIT $?"']
    os.makedirs(P['logs'], exist_ok=True)
    log_path = os.path.join(P['logs'], 'boot-vng.log')
    say(f'vng --run {bz} (console log {log_path})')
    t0 = time.time()
    try:
        p = subprocess.run(argv, env={**tool_env(), **env}, timeout=args.timeout,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        out, timed_out = p.stdout, False
    except subprocess.TimeoutExpired as e:
        out, timed_out = e.stdout or b'', True
    with open(log_path, 'wb') as fh:
        fh.write(out)
    text = out.decode(errors='replace')
    if not args.quiet:
        sys.stdout.write(text)
    res = BootResult(log_path, text, timed_out, core.guest_exit_status(text), time.time() - t0)
    problems = res.problems()
    if problems:
        raise WorkbenchError('vng boot failed:\n  ' + '\n  '.join(problems))
    say(f'vng boot: guest command exited 0 in {res.elapsed:.0f}s; no splat in the log')


# ---------------------------------------------------------------------------
# test

def kunit_results(P, tree, res):
    """Run the base tree's own `kunit.py parse` over the console log."""
    kunit = os.path.join(tree, 'tools', 'testing', 'kunit', 'kunit.py')
    with tempfile.NamedTemporaryFile('r', suffix='.json') as js:
        p = run([sys.executable, kunit, 'parse', f'--json={js.name}', res.log_path],
                capture=True, check=False)
        text = js.read()
    if not text.strip():
        raise WorkbenchError(f'kunit.py parse gave no JSON (exit {p.returncode}): '
                             + (p.stderr or p.stdout).strip()[-300:])
    return core.kunit_results_from_json(text)


def boot_results(P, out, tree, config, script, timeout, append='', label=None, path=None,
                 cpu=None):
    """Boot the patched kernel of `config`, then turn the console log into one result
    per KUnit case, startup test and guest test, plus one for the boot itself (clean
    exit, no splat). `label` names the boot (default patched-<config>), `path` is what
    the guest scripts expect (default: kernel_path())."""
    label = label or f'patched-{config}'
    res = qemu_boot(P, out, tree, f'sh /wb/{script}', label, timeout,
                    path or kernel_path(False, config), append=append, cpu=cpu)
    results = []
    problems = res.problems()
    results.append(core.Result(f'{label}: boot clean, guest script finished',
                               not problems, '; '.join(problems)[:600]))
    try:
        results += [core.Result(f'{label}: {r.name}', r.ok, r.why)
                    for r in kunit_results(P, tree, res)]
    except WorkbenchError as e:
        results.append(core.Result(f'{label}: kunit', False, str(e)))
    startup = core.parse_startup_tests(res.text)
    if not startup:
        results.append(core.Result(f'{label}: startup tests', False,
                                   'no FTRACE_STARTUP_TEST result in the console log'))
    results += [core.Result(f'{label}: {r.name}', r.ok, r.why) for r in startup]
    guest = core.parse_guest_tests(res.text)
    if not guest:
        results.append(core.Result(f'{label}: guest tests', False, 'no WB-TEST line in the log'))
    results += [core.Result(f'{label}: {r.name}', r.ok, r.why) for r in guest]
    return results


def unit_test_results():
    import unittest
    loader = unittest.TestLoader()
    suite = loader.discover(os.path.join(TOOLS, 'wb'), pattern='test_*.py',
                            top_level_dir=TOOLS)
    results = []

    class Collect(unittest.TestResult):
        def addSuccess(self, test):
            results.append(core.Result(f'workbench: {test.id()}', True))

        def addFailure(self, test, err):
            results.append(core.Result(f'workbench: {test.id()}', False,
                                       self._exc_info_to_string(err, test).strip().splitlines()[-1]))

        addError = addFailure

    suite.run(Collect())
    if not results:
        results.append(core.Result('workbench: unit tests', False, 'none found'))
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
            results.append(core.Result(f'{label}: {m.group(1)}', m.group(2) == 'ok'))
    if p.returncode != 0 and all(r.ok for r in results):
        results.append(core.Result(f'{label}: cargo test', False,
                                   (p.stderr or p.stdout).strip()[-500:]))
    if not results:
        results.append(core.Result(f'{label}: cargo test', False, 'no test ran'))
    return results


def host_test_results():
    """cargo test of tools/host: the pure kernel modules, built from the series' files;
    then the loom model check of the slot placement (its atomics swapped for loom's under
    cfg(loom), every interleaving of lookups and changes explored), in its own target
    directory so that the two builds do not invalidate each other."""
    return (cargo_test_results('host', []) +
            cargo_test_results('host loom', ['--release', '--test', 'loom',
                                             '--target-dir', 'target/loom'],
                               env={'RUSTFLAGS': '--cfg loom'}))


class Steps:
    """Runs test steps, each producing results; a step that raises becomes one failure."""

    def __init__(self):
        self.results = []
        self.times = []

    def step(self, name, fn):
        t0 = time.time()
        say(f'test step: {name}')
        try:
            got = fn()
            if got is None:
                got = [core.Result(name, True)]
            ok = all(r.ok is not False for r in got)
        except WorkbenchError as e:
            got = [core.Result(name, False, str(e).replace('\n', ' | ')[:800])]
            ok = False
        for r in got:
            print(r.line(), flush=True)
        self.results += got
        self.times.append((name, time.time() - t0))
        return ok


def cmd_test(args):
    s = Steps()
    s.step('setup', lambda: cmd_setup(args))
    s.step('workbench unit tests', unit_test_results)
    s.step('host tests', host_test_results)
    have_source = s.step('source', lambda: (cmd_source(argparse.Namespace(update=False)), None)[1])
    P = paths()
    if have_source:
        s.step('check', lambda: check_results(require_source()))
        # The mbox that would go to LKML: git-ams onto the base, same tree.
        s.step('send --dry-run', lambda: send_results(require_source())[0])
        applied = s.step('apply', lambda: cmd_apply(argparse.Namespace(force=False)))
    else:
        applied = False
    configs = args.configs or TEST_CONFIGS + (EXTENDED_CONFIGS if args.extended else [])
    each_configs = EACH_QUICK_CONFIGS + (EXTENDED_EACH_QUICK_CONFIGS if args.extended else ())
    for config in configs:
        label = f'patched-{config}'
        built = applied and s.step(f'build {label}', lambda c=config: (build(P, False, c), None)[1])
        if built:
            tree = P['linux']
            out = build_dir(P, False, config)
            if config == configs[0] or config in RUSTDOC_ALSO:
                s.step(f'rustdoc {label}', lambda o=out: rustdoc_results(tree, o))
            if config == configs[0]:
                s.step(f'no-panic paths {label}', lambda o=out: nopanic_results(o))
            if config in BUILD_ONLY:
                continue
            if config in EXTRA_BOOTS:
                for suffix, cpu, cmdline in EXTRA_BOOTS[config]:
                    s.step(f'boot {label}-{suffix}',
                           lambda o=out, c=config, t=tree, a=cmdline, u=cpu, x=suffix:
                           boot_results(P, o, t, c, 'test.sh', args.timeout, append=a,
                                        label=f'patched-{c}-{x}', cpu=u))
                continue
            # The full kprobes stress (1000 kprobes, 3 rounds) on the first kernel only.
            append = 'wb_kprobes=1000 wb_kprobe_rounds=3' if config == configs[0] else ''
            s.step(f'boot {label}',
                   lambda o=out, c=config, t=tree, a=append:
                   boot_results(P, o, t, c, 'test.sh', args.timeout, append=a))
        else:
            s.results.append(core.Result(f'boot {label}', False, 'not run: no kernel was built'))
            print(s.results[-1].line(), flush=True)
    # The stress config, short form: lockdep, kmemleak, DEBUG_VM, W+X, fault injection.
    if applied and args.stress_cycles:
        s.step('stress', lambda: stress_results(P, args.stress_cycles, args.timeout))
    # Bisectability last, quick form: at each patch, compile what it changes (in the
    # scratch worktree and build/each-<config>), with gcc and with LLVM and clippy.
    # `check --each` builds whole kernels.
    for config in () if not have_source or args.no_each else each_configs:
        s.step(f'check --each --quick --config {config}',
               lambda c=config: each_results(require_source(), c, quick=True))
    for name, secs in s.times:
        say(f'time: {name}: {secs:.0f}s')
    say(f'time: total {sum(t for _, t in s.times):.0f}s')
    print(core.summary_line(s.results), flush=True)
    if any(r.ok is False for r in s.results):
        raise SystemExit(1)


# ---------------------------------------------------------------------------
# send

def send_results(P, mbox=None):
    """Write the mbox of the series as it would be sent (cover letter, To/Cc from
    get_maintainer.pl, threaded) from the patches in patches/, then git am it onto the
    base and compare the tree with the one patches/series gives."""
    head, series = apply_in_scratch(P)
    scratch = P['scratch']
    want_tree = git('rev-parse', f'{head}^{{tree}}', cwd=scratch)
    files = [os.path.join(PATCHES, n) for n in series.patches]
    mbox = mbox or os.path.join(P['cache'], 'send', 'series.mbox')
    os.makedirs(os.path.dirname(mbox), exist_ok=True)
    text = git('format-patch', '--stdout', '--thread=shallow',
               *format_patch_args(P['linux'], files), 'base..HEAD', cwd=scratch,
               env=cover_ident(scratch))
    with open(mbox, 'w') as fh:
        fh.write(text + '\n')
    results = []
    n = text.count('\nSubject: [PATCH') + text.startswith('Subject: [PATCH')
    results.append(core.Result(f'send: mbox has the cover letter and {len(series.patches)} '
                               'patches', n == len(series.patches) + 1,
                               f'{n} messages in {mbox}'))
    heads = re.findall(r'^To: (.*)$', text, re.M)
    results.append(core.Result('send: every message has To: from get_maintainer.pl',
                               len(heads) == n and all(heads), f'{len(heads)} To: lines'))
    run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
    git('checkout', '-q', '-f', '--detach', 'base', cwd=scratch)
    p = run(['git', 'am', '-q', '--empty=drop', '--committer-date-is-author-date', mbox],
            cwd=scratch, capture=True, check=False, env=GIT_IDENT)
    if p.returncode:
        run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
        results.append(core.Result('send: the mbox git-ams onto the base', False,
                                   (p.stderr or p.stdout).strip()[-500:]))
        return results, mbox
    results.append(core.Result('send: the mbox git-ams onto the base', True))
    got_tree = git('rev-parse', 'HEAD^{tree}', cwd=scratch)
    count = git('rev-list', '--count', 'base..HEAD', cwd=scratch)
    results.append(core.Result('send: the mbox gives the tree of patches/series',
                               got_tree == want_tree and int(count) == len(series.patches),
                               f'tree {got_tree[:12]} vs {want_tree[:12]}, {count} commits'))
    return results, mbox


def cmd_send(args):
    if not args.dry_run:
        raise WorkbenchError('only --dry-run: this machine sends no mail. Send the mbox it '
                             'writes with `git send-email` from a machine that can.')
    P = require_source()
    results, mbox = send_results(P, args.mbox)
    for r in results:
        print(r.line(), flush=True)
    with open(mbox) as fh:
        text = fh.read()
    for h in ('To', 'Cc'):
        m = re.search(rf'^{h}: (.*(?:\n[ \t].*)*)', text, re.M)
        if m:
            say(f'{h}: ' + ' '.join(m.group(1).split()))
    say(f'mbox: {mbox} (send with: git send-email {mbox})')
    if any(r.ok is False for r in results):
        raise SystemExit(1)


# ---------------------------------------------------------------------------
# stress

def stress_results(P, cycles, timeout):
    """Build the stress config (lockdep, kmemleak, DEBUG_VM, DEBUG_WX, fault injection)
    and boot it with tools/guest/stress.sh: concurrent create/free cycles, injected
    slot allocation failures, then accounting, kmemleak and W+X checks."""
    out = build(P, False, 'stress')
    return boot_results(P, out, P['linux'], 'stress', f'stress.sh {cycles}', timeout)


def cmd_stress(args):
    P = require_source()
    results = stress_results(P, args.cycles, args.timeout)
    for r in results:
        print(r.line(), flush=True)
    print(core.summary_line(results), flush=True)
    if any(r.ok is False for r in results):
        raise SystemExit(1)


# ---------------------------------------------------------------------------
# demo

def cmd_demo(args):
    cmd_setup(args)
    cmd_source(argparse.Namespace(update=False))
    cmd_apply(argparse.Namespace(force=args.force))
    P = paths()
    out = build(P, False, 'default')
    res = qemu_boot(P, out, P['linux'], f'sh /wb/demo.sh {args.instances}', 'demo',
                    args.timeout, kernel_path(False, 'default'), echo=False)
    shown = False
    for raw in res.text.splitlines():
        line = core.strip_console_prefix(raw)
        if line.startswith('WB-DEMO'):
            shown = True
        if shown and not line.startswith('WB-GUEST-EXIT'):
            print(line[len('WB-DEMO '):] if line.startswith('WB-DEMO ') else line)
        if line.startswith('WB-DEMO-END'):
            shown = False
    problems = res.problems()
    if problems:
        raise WorkbenchError(f'demo boot failed ({res.log_path}):\n  ' + '\n  '.join(problems))


# ---------------------------------------------------------------------------
# bench

def tramp_code_bytes(out):
    """Bytes of one ftrace_caller trampoline of the kernel built in `out`: the template,
    then the return (create_trampoline()'s RET_SIZE, or our 5-byte return area) and
    the ops pointer, as each kernel lays them out."""
    syms = core.parse_nm(run(['nm', os.path.join(out, 'vmlinux')], capture=True).stdout)
    code = syms['ftrace_caller_end'] - syms['ftrace_caller']
    if 'x86_ftrace_tramp_create' in syms:
        return (code + 5 + 7) // 8 * 8 + 8
    with open(os.path.join(out, '.config')) as fh:
        cfg = core.parse_config(fh.read())
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
        return core.split_probe_offset(p.stdout, SPLIT_FUNC)
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


def bench_guest_cmd(args):
    ns = ' '.join(map(str, args.instances))
    kps = sorted(args.kprobes)
    cmd = [f'sh /wb/tramp-mem.sh {ns}',
           f'sh /wb/tramp-cost.sh instances {" ".join(map(str, args.cost_instances))}',
           f'sh /wb/tramp-cost.sh ops {" ".join(map(str, args.ops))}',
           f'sh /wb/tramp-cost.sh kprobes {" ".join(map(str, args.cost_kprobes))}',
           f'sh /wb/tramp-cost.sh cycles {args.cycles}',
           f'sh /wb/tramp-cost.sh calls {args.call_runs} {args.calls}',
           f'sh /wb/text-lookup.sh {args.text_loops} {" ".join(map(str, args.text_ops))}']
    for k in kps[:-1]:
        cmd.append(f'sh /wb/kprobe-stress.sh {k} 1 kprobes{k}')
    cmd.append(f'sh /wb/kprobe-stress.sh {kps[-1]} {args.kprobe_rounds} kprobes{kps[-1]}')
    cmd.append(f'sh /wb/tramp-mem.sh --keep {args.mix_instances} && '
               f'sh /wb/kprobe-stress.sh {kps[-1]} 1 mix')
    return '; '.join(cmd)


# The kernel command line of the bench boots. Small per-instance ring buffers: 1000
# instances of the default 1.4 MiB per CPU would not fit in the guest.
BENCH_APPEND = 'trace_buf_size=4096 kunit.enable=0'


def in_threads(fns):
    """Runs the functions at once, one thread each; their results in order, or the first
    exception raised."""
    results = [None] * len(fns)
    errors = [None] * len(fns)

    def call(i):
        try:
            results[i] = fns[i]()
        except BaseException as e:  # re-raised below, in the caller's thread
            errors[i] = e
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results


def bench_kernel(P, args, label, vanilla, out, gcmd):
    """Boots one kernel of the bench with the guest command and returns its figures."""
    tree = P['vanilla'] if vanilla else P['linux']
    guest_modules(P, tree, out)
    res = qemu_boot(P, out, tree, f'export WB_SPLIT_AT={split_probe_at(out)}; {gcmd}',
                    f'bench-{label}-{args.config}', args.timeout,
                    kernel_path(vanilla, args.config), append=BENCH_APPEND, icount=True)
    # The guest status is that of the last kprobe stress run, whose own checks are
    # for `test`; here only a splat or a dead guest fails the bench.
    problems = [p for p in res.problems() if 'guest command exited' not in p]
    if problems:
        raise WorkbenchError(f'bench boot of {label} failed ({res.log_path}):\n  '
                             + '\n  '.join(problems))
    # The stress checks of kprobe-stress.sh must pass on both kernels.
    bad = [g for g in core.parse_guest_tests(res.text) if g.ok is False]
    if bad:
        raise WorkbenchError(f'{label}: ' + '; '.join(f'{g.name}: {g.why}' for g in bad[:5]))
    r = {}
    m = re.search(r'WB-MEM-INFO kernel=(\S+)', res.text)
    r['kernel'] = (f'{m.group(1) if m else "?"} ({label}, config {args.config}, '
                   f'{os.path.relpath(out, P["cache"])}/arch/x86/boot/bzImage, '
                   f'console log {res.log_path})')
    r['kp'] = core.parse_kp_lines(res.text)
    want = sorted([f'kprobes{k}' for k in args.kprobes] + ['mix'])
    if sorted(r['kp']) != want:
        raise WorkbenchError(f'{label}: the kprobes measurements are missing '
                             f'(have {sorted(r["kp"])}; {res.log_path})')
    mem = core.parse_mem_lines(res.text)
    if sorted(mem) != sorted(args.instances):
        raise WorkbenchError(f'{label}: measured n={sorted(mem)}, asked for {args.instances}')
    r['rows'] = core.mem_rows(label, mem, tramp_code_bytes(out))
    r['cost'] = core.parse_cost_lines(res.text)
    want = sorted([('instances', n) for n in args.cost_instances]
                  + [('ops', n) for n in [0] + args.ops]
                  + [('kprobes', n) for n in args.cost_kprobes])
    if sorted(r['cost']) != want:
        raise WorkbenchError(f'{label}: cost measurements missing (have '
                             f'{sorted(r["cost"])}; {res.log_path})')
    r['ptdump'] = core.parse_ptdump_lines(res.text)
    r['cycles'] = core.parse_cycles_lines(res.text)
    if list(r['cycles']) != [args.cycles]:
        raise WorkbenchError(f'{label}: no cycles measurement ({res.log_path})')
    r['calls'] = core.parse_call_lines(res.text)
    got = {k: len(v) for k, v in r['calls'].items()}
    if got != {(rel, s): args.call_runs for rel in (1, 2) for s in (0, 1)}:
        raise WorkbenchError(f'{label}: per-call runs missing (have {got}; {res.log_path})')
    r['text'] = core.parse_text_lines(res.text)
    if sorted(r['text']) != sorted(args.text_ops):
        raise WorkbenchError(f'{label}: text lookups measured for {sorted(r["text"])}, '
                             f'asked for {args.text_ops} ({res.log_path})')
    r['boot'] = core.boot_times(res.text)
    return r


def bench_boot_again(P, args, label, vanilla, out):
    """A second boot of one kernel, to nothing but a shell that exits: its boot times."""
    tree = P['vanilla'] if vanilla else P['linux']
    res = qemu_boot(P, out, tree, 'true', f'bench-{label}-{args.config}-again', args.timeout,
                    kernel_path(vanilla, args.config), append=BENCH_APPEND, icount=True)
    if res.problems():
        raise WorkbenchError(f'second bench boot of {label} failed ({res.log_path}):\n  '
                             + '\n  '.join(res.problems()))
    return core.boot_times(res.text)


def write_readme_block(cmdline, report):
    """The bench-memory block of README.md: how it was made, the plots and `report`."""
    block = (f'Written by `{cmdline} --readme`; the guest scripts are in `tools/guest/` '
             '(`tramp-mem.sh`, `tramp-cost.sh`, `text-lookup.sh`, `kprobe-stress.sh`) '
             'and the module in `tools/guest-mod/`. Plots: '
             '[results/memory.png](results/memory.png) (memory), '
             '[results/insn.png](results/insn.png) (instructions per lookup); all '
             'figures as JSON: [results/bench.json](results/bench.json).\n\n'
             '![executable memory vs N](results/memory.png)\n'
             '![instructions per lookup vs ops alive](results/insn.png)\n\n```\n'
             + report + '```\n')
    path = os.path.join(REPO, 'README.md')
    with open(path) as fh:
        text = fh.read()
    with open(path, 'w') as fh:
        fh.write(core.replace_block(text, 'bench-memory', block))


def write_insn_plot(outdir, text, config):
    """insn.dat and insn.png in `outdir`: instructions per operation against the number
    of ops alive, from the text lookup figures {kernel: {n: {...}}}."""
    dat, png = os.path.join(outdir, 'insn.dat'), os.path.join(outdir, 'insn.png')
    with open(dat, 'w') as fh:
        fh.write(core.insn_plot_data(text))
    run(['gnuplot'], input=core.insn_gnuplot_script(
        dat, png, f'finding a trampoline by address, v7.3 vs execslot (config {config})'),
        what='gnuplot')


def cmd_bench(args):
    P = paths()
    ns = args.instances
    gcmd = bench_guest_cmd(args)
    both = (('vanilla', True), ('patched', False))
    outs = {label: build(P, vanilla, args.config) for label, vanilla in both}
    # Under -icount the guest's clock does not depend on the host: both kernels boot at
    # once, one host thread each.
    got = dict(zip(outs, in_threads([
        lambda label=label, vanilla=vanilla: bench_kernel(P, args, label, vanilla,
                                                          outs[label], gcmd)
        for label, vanilla in both])))
    again = dict(zip(outs, in_threads([
        lambda label=label, vanilla=vanilla: bench_boot_again(P, args, label, vanilla,
                                                              outs[label])
        for label, vanilla in both])))
    rows = got['vanilla']['rows'] + got['patched']['rows']
    kp = {k: g['kp'] for k, g in got.items()}
    cost = {k: g['cost'] for k, g in got.items()}
    calls = {k: g['calls'] for k, g in got.items()}
    ptdump = {k: g['ptdump'] for k, g in got.items()}
    cycles = {k: g['cycles'] for k, g in got.items()}
    boots = {k: [got[k]['boot'], again[k]] for k in got}
    text = {k: g['text'] for k, g in got.items()}
    kernels = {k: g['kernel'] for k, g in got.items()}
    cmdline = 'tools/workbench bench ' + ' '.join(
        [f'--config {args.config}'] * (args.config != 'default')
        + ['--instances ' + ' '.join(map(str, ns))]
        + ['--cost-instances ' + ' '.join(map(str, args.cost_instances))]
        + ['--ops ' + ' '.join(map(str, args.ops))]
        + ['--cost-kprobes ' + ' '.join(map(str, args.cost_kprobes))]
        + [f'--cycles {args.cycles}']
        + [f'--text-loops {args.text_loops} --text-ops '
           + ' '.join(map(str, args.text_ops))]
        + ['--kprobes ' + ' '.join(map(str, args.kprobes))]
        + [f'--call-runs {args.call_runs} --calls {args.calls}'])
    bloat = bloat_report(P['linux'], outs['vanilla'], outs['patched'])
    head = [f'Command: {cmdline}', f'Date: {time.strftime("%Y-%m-%d %H:%M %Z")}',
            f'Machine: {machine_info()}',
            f'Kernels: vanilla {kernels["vanilla"]}', f'         patched {kernels["patched"]}',
            'Guests: QEMU/TCG with -icount shift=0,sleep=off (one TCG thread for both',
            'vCPUs; the guest clock advances 1 ns per instruction executed, and jumps to',
            'the next timer when idle), kernel command line '
            f'"{BENCH_APPEND}{ICOUNT_APPEND}".',
            'Guest command (both kernels; WB_SPLIT_AT, where the splits are counted, is '
            f'found in each vmlinux): {gcmd}',
            'Second boot of each kernel, for the boot figures: true',
            '']
    report = ('\n'.join(head) + '\n'
              + core.mem_report(rows, args.config, ns) + '\n' + core.kp_report(kp) + '\n'
              + core.boot_report(boots) + '\n'
              + core.call_report(calls, (args.call_runs, args.calls)) + '\n'
              + core.cost_report(cost, ptdump) + '\n'
              + core.cycles_report(cycles) + '\n'
              + core.text_report(text) + '\n'
              + bloat[0])
    print(report)
    outdir = os.path.join(REPO, 'results') if args.readme else os.path.join(P['cache'], 'bench')
    os.makedirs(outdir, exist_ok=True)
    dat, png = os.path.join(outdir, 'memory.dat'), os.path.join(outdir, 'memory.png')
    with open(dat, 'w') as fh:
        fh.write(core.plot_data(rows))
    gp = core.gnuplot_script(dat, png, f'ftrace trampolines: executable memory, '
                             f'v7.3 vs execslot (config {args.config}, QEMU/TCG)')
    if not shutil.which('gnuplot'):
        raise WorkbenchError('gnuplot not found (gnuplot-nox; run `tools/workbench setup`)')
    run(['gnuplot'], input=gp, what='gnuplot')
    write_insn_plot(outdir, text, args.config)
    with open(os.path.join(outdir, 'report.txt'), 'w') as fh:
        fh.write(report)
    data = {'command': cmdline, 'config': args.config,
            'mode': 'QEMU/TCG -icount shift=0,sleep=off',
            'machine': machine_info(), 'date': time.strftime('%F'), 'kernels': kernels,
            'guest_command': gcmd, 'rows': rows, 'kprobes': kp,
            'mix_instances': args.mix_instances, 'bloat_total': bloat[1],
            'cost': {k: {f'{w}-{n}': v for (w, n), v in c.items()} for k, c in cost.items()},
            'ptdump': {k: {f'{w}-{n}': v for (w, n), v in c.items()} for k, c in ptdump.items()},
            'cycles': {k: {str(n): v for n, v in c.items()} for k, c in cycles.items()},
            'boot_ns': boots,
            'text_lookup': {k: {str(n): v for n, v in c.items()} for k, c in text.items()},
            'insn_per_call': {k: {f'rel{r}-regs{g}': v for (r, g), v in c.items()}
                              for k, c in calls.items()}}
    with open(os.path.join(outdir, 'bench.json'), 'w') as fh:
        json.dump(data, fh, indent=1)
    if args.json:
        with open(args.json, 'w') as fh:
            json.dump(data, fh, indent=1)
        say(f'wrote {args.json}')
    say(f'wrote {os.path.join(outdir, "report.txt")}, bench.json, memory.dat/png and '
        'insn.dat/png')
    if args.readme:
        write_readme_block(cmdline, report)
        say('updated the bench-memory block of README.md')
    leaks = [r for r in rows if r['leaked_after_removal']]
    if leaks:
        raise WorkbenchError('memory not returned after removing the instances: '
                             + ', '.join(f'{r["kernel"]} n={r["n"]}' for r in leaks))


# ---------------------------------------------------------------------------
# fixtures

FIXTURE_DIR = os.path.join(REPO, 'tools', 'host', 'fixtures', 'templates')


def cmd_fixtures(args):
    """Write the ftrace template fixtures of the host tests from built vmlinux files."""
    P = paths()
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    for config in args.configs:
        out = build_dir(P, False, config)
        vmlinux = os.path.join(out, 'vmlinux')
        if not os.path.exists(vmlinux):
            raise WorkbenchError(f'{vmlinux} does not exist: run '
                                 f'`tools/workbench build --config {config}`')
        nm = run(['nm', vmlinux], capture=True).stdout
        with open(vmlinux, 'rb') as fh:
            elf = fh.read()
        with open(os.path.join(out, '.config')) as fh:
            dotconfig = fh.read()
        path = os.path.join(FIXTURE_DIR, f'{config}.txt')
        with open(path, 'w') as fh:
            fh.write(core.template_fixture(nm, elf, dotconfig, config))
        say(f'wrote {os.path.relpath(path, REPO)}')


# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(prog='tools/workbench', description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest='cmd', metavar='COMMAND')
    sub.required = True

    sub.add_parser('setup', help='install the toolchain, QEMU and the Debian sources (idempotent)')
    p = sub.add_parser('source', help=f'download {PACKAGE} and commit it as the base work tree')
    p.add_argument('--update', action='store_true', help='download the newest package again')
    p = sub.add_parser('apply', help='reset the work tree to the base and git am patches/series')
    p.add_argument('--force', action='store_true', help='drop work-tree commits not in patches/')
    p = sub.add_parser('build', help='configure from ci/kernel fragments and build bzImage')
    p.add_argument('--vanilla', action='store_true', help='build the base tree without the series')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('-j', '--jobs', type=int)
    p.add_argument('--rustdoc', action='store_true',
                   help="then rustdoc the series' Rust crates (warnings are errors)")
    p = sub.add_parser('boot', help='boot the built kernel in QEMU and run a guest command')
    p.add_argument('--vanilla', action='store_true')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('--exec', metavar='CMD', help='guest shell command (default: uname -a)')
    p.add_argument('--append', default='', help='more kernel command line')
    p.add_argument('--vng', action='store_true', help='boot through virtme-ng (config vng)')
    p.add_argument('--timeout', type=int, default=600)
    p.add_argument('-q', '--quiet', action='store_true', help='do not echo the console')
    p = sub.add_parser('test', help='run every test layer; ends with "N passed, N failed"')
    p.add_argument('--configs', nargs='+', choices=sorted(CONFIGS),
                   help=f'configs to build and boot, instead of {" ".join(TEST_CONFIGS)} '
                   f'({", ".join(BUILD_ONLY)}: build only)')
    p.add_argument('--extended', action='store_true',
                   help=f'also the configs {" ".join(EXTENDED_CONFIGS)} and the per-patch '
                   f'compile with {" ".join(EXTENDED_EACH_QUICK_CONFIGS)}')
    p.add_argument('--no-each', action='store_true',
                   help='skip building the kernel at every patch (check --each)')
    p.add_argument('--timeout', type=int, default=1800, help='per boot, in seconds')
    p.add_argument('--stress-cycles', type=int, default=200,
                   help='cycles per worker of the stress boot (0: skip it)')
    sub.add_parser('export', help='work-tree commits -> patches/ and the added files')
    p = sub.add_parser('check', help='series applies, added files match, checkpatch --strict')
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
    p = sub.add_parser('bench', help='vanilla vs patched, instructions counted: memory, '
                       'permission changes and large-page splits, create/free cost, '
                       'instructions per traced call, boot; a plot')
    p.add_argument('--config', default='default', choices=sorted(CONFIGS))
    p.add_argument('--instances', type=int, nargs='+', default=[1, 10, 100, 500, 1000])
    p.add_argument('--cost-instances', type=int, nargs='+', default=[1, 100, 1000],
                   help='N for the create/free cost of instances')
    p.add_argument('--ops', type=int, nargs='+', default=[1, 100, 1000],
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
                   help='write the report into README.md (between the bench-memory markers) '
                   'and results/ (plot, JSON)')
    p.add_argument('--timeout', type=int, default=5400, help='per boot, in seconds')
    p = sub.add_parser('send', help='write the series as an mbox ready for git send-email, '
                       'and check it git-ams onto the base')
    p.add_argument('--dry-run', action='store_true', help='write and check, send nothing')
    p.add_argument('--mbox', metavar='FILE', help='where to write it (default: the cache)')
    p = sub.add_parser('stress', help='stress and fault tests on the stress config '
                       '(lockdep, kmemleak, DEBUG_VM, DEBUG_WX, fail_execslot)')
    p.add_argument('--cycles', type=int, default=1000, help='cycles per worker')
    p.add_argument('--timeout', type=int, default=3600)
    p = sub.add_parser('fixtures', help='write the host tests\' ftrace template fixtures')
    p.add_argument('--configs', nargs='+', default=['default', 'fp', 'mitigations'],
                   choices=sorted(CONFIGS))

    args = ap.parse_args(argv)
    fn = {'setup': cmd_setup, 'source': cmd_source, 'apply': cmd_apply, 'build': cmd_build,
          'boot': cmd_boot, 'test': cmd_test, 'export': cmd_export, 'check': cmd_check,
          'demo': cmd_demo, 'fixtures': cmd_fixtures, 'stress': cmd_stress,
          'send': cmd_send,
          'bench': cmd_bench}[args.cmd]
    try:
        fn(args)
    except WorkbenchError as e:
        print(f'workbench: error: {e}', file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0
