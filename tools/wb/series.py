"""The series going out: `export` (work-tree commits to patches/ and the added files), the
cover letter (tools/cover-letter.txt, the bench's figures, recipients from the base's
get_maintainer.pl) and `send --dry-run` (the mbox, checked to git am onto the base)."""

import glob
import json
import os
import re
import shutil
import tempfile

from .benchreport import bench_summary
from .patches import COVER, OVERLAY_DIRS, format_series, repo_overlay_files
from .results import Result, exit_if_failed, print_results
from .settings import PATCHES, REPO, RESULTS, TOOLS
from .source import added_files, apply_in_scratch, base_version, require_source
from .util import GIT_IDENT, WorkbenchError, git, run, say

COVER_SOURCE = os.path.join(TOOLS, 'cover-letter.txt')
BENCH_JSON = os.path.join(RESULTS, 'bench.json')

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


def recipients(linux, patch_files):
    """(to, cc) of the series from the base tree's scripts/get_maintainer.pl."""
    p = run(['perl', 'scripts/get_maintainer.pl', '--no-git', '--no-git-fallback',
             *patch_files], cwd=linux, capture=True)
    return parse_get_maintainer(p.stdout, EXTRA_CC)


def cover_description():
    """tools/cover-letter.txt with @BENCH@ replaced by results/bench.json's figures."""
    with open(COVER_SOURCE) as fh:
        text = fh.read()
    if '@BENCH@' in text:
        if not os.path.isfile(BENCH_JSON):
            raise WorkbenchError('results/bench.json is missing: run '
                                 '`tools/workbench bench --readme` first')
        with open(BENCH_JSON) as fh:
            text = text.replace('@BENCH@', bench_summary(json.load(fh)))
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
        git('format-patch', '-q', '--abbrev=9', '-o', tmp, *format_patch_args(linux, patch_files),
            'base..HEAD', cwd=linux, env=cover_ident(linux))
        with open(os.path.join(tmp, COVER)) as fh:
            return fh.read()
    finally:
        shutil.rmtree(tmp)


# ---------------------------------------------------------------------------
# export

def _exportable(linux):
    """The files the work tree's commits add; WorkbenchError if anything would be lost."""
    if git('status', '--porcelain', '--untracked-files=no', cwd=linux):
        raise WorkbenchError(f'{linux} has uncommitted changes: commit them first')
    # Debian's top-level .gitignore ignores every new file ("/*"): a new source file
    # left out of a commit would silently be missing from the series.
    hidden = git('ls-files', '--others', '--ignored', '--exclude-standard', '--',
                 *OVERLAY_DIRS, cwd=linux).split()
    if hidden:
        raise WorkbenchError('files ignored by the base\'s .gitignore are not committed '
                             '(commit them with `git add -f`): ' + ', '.join(hidden))
    added = added_files(linux, 'HEAD')
    outside = [f for f in added if f.split('/')[0] not in OVERLAY_DIRS]
    if outside:
        raise WorkbenchError('the series adds files outside ' + ', '.join(OVERLAY_DIRS)
                             + ': ' + ', '.join(outside))
    return added


def _write_patches(linux, has_commits):
    """format-patch of base..HEAD into patches/ (and the cover letter); returns the
    names written."""
    tmp = tempfile.mkdtemp(prefix='wb-export-')
    try:
        if has_commits:
            # A fixed abbreviation: git's default depends on how the tree is packed.
            git('format-patch', '-q', '--zero-commit', '--no-signature', '--abbrev=9', '-o',
                tmp, 'base..HEAD', cwd=linux)
        os.makedirs(PATCHES, exist_ok=True)
        for old in glob.glob(os.path.join(PATCHES, '[0-9][0-9][0-9][0-9]-*.patch')):
            if not os.path.basename(old).startswith('0000-'):
                os.unlink(old)
        names = sorted(os.listdir(tmp))
        for n in names:
            shutil.copy(os.path.join(tmp, n), os.path.join(PATCHES, n))
        if has_commits:
            cover = cover_letter(linux, [os.path.join(tmp, n) for n in names])
            with open(os.path.join(PATCHES, COVER), 'w') as fh:
                fh.write(cover)
    finally:
        shutil.rmtree(tmp)
    return names


def export(P):
    """`export`: work-tree commits -> patches/ and series, plus a copy of every added file."""
    require_source(P)
    linux = P.linux
    added = _exportable(linux)
    commits = git('rev-list', '--reverse', 'base..HEAD', cwd=linux).split()
    names = _write_patches(linux, bool(commits))
    with open(os.path.join(PATCHES, 'series'), 'w') as fh:
        fh.write(format_series([n for n in names if n != COVER], base_version(linux)))
    for f in repo_overlay_files():
        if f not in added:
            os.unlink(os.path.join(REPO, f))
    for f in added:
        dst = os.path.join(REPO, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(os.path.join(linux, f), dst)
    git('update-ref', 'refs/wb/applied', 'HEAD', cwd=linux)
    say(f'exported {len(names)} patch(es) and {len(added)} added file(s) into {REPO}')


# ---------------------------------------------------------------------------
# send

def default_mbox(P):
    return os.path.join(P.cache, 'send', 'series.mbox')


def _mbox_results(text, mbox, count):
    """The mbox holds the cover letter and the `count` patches, each with its To:."""
    n = text.count('\nSubject: [PATCH') + text.startswith('Subject: [PATCH')
    heads = re.findall(r'^To: (.*)$', text, re.M)
    return [Result(f'send: mbox has the cover letter and {count} '
                   'patches', n == count + 1, f'{n} messages in {mbox}'),
            Result('send: every message has To: from get_maintainer.pl',
                   len(heads) == n and all(heads), f'{len(heads)} To: lines')]


def _am_results(scratch, mbox, want_tree, count):
    """The mbox, git am'd onto the base in the scratch worktree, gives `want_tree`."""
    run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
    git('checkout', '-q', '-f', '--detach', 'base', cwd=scratch)
    p = run(['git', 'am', '-q', '--empty=drop', '--committer-date-is-author-date', mbox],
            cwd=scratch, capture=True, check=False, env=GIT_IDENT)
    if p.returncode:
        run(['git', 'am', '--abort'], cwd=scratch, capture=True, check=False)
        return [Result('send: the mbox git-ams onto the base', False,
                       (p.stderr or p.stdout).strip()[-500:])]
    got_tree = git('rev-parse', 'HEAD^{tree}', cwd=scratch)
    commits = git('rev-list', '--count', 'base..HEAD', cwd=scratch)
    return [Result('send: the mbox git-ams onto the base', True),
            Result('send: the mbox gives the tree of patches/series',
                   got_tree == want_tree and int(commits) == count,
                   f'tree {got_tree[:12]} vs {want_tree[:12]}, {commits} commits')]


def send_results(P, mbox=None):
    """Write the mbox of the series as it would be sent (cover letter, To/Cc from
    get_maintainer.pl, threaded) from the patches in patches/ to `mbox` (default:
    default_mbox()), then git am it onto the base and compare the tree with the one
    patches/series gives."""
    head, series = apply_in_scratch(P)
    scratch = P.scratch
    want_tree = git('rev-parse', f'{head}^{{tree}}', cwd=scratch)
    files = [os.path.join(PATCHES, n) for n in series.patches]
    mbox = mbox or default_mbox(P)
    os.makedirs(os.path.dirname(mbox), exist_ok=True)
    text = git('format-patch', '--stdout', '--thread=shallow',
               *format_patch_args(P.linux, files), 'base..HEAD', cwd=scratch,
               env=cover_ident(scratch))
    with open(mbox, 'w') as fh:
        fh.write(text + '\n')
    count = len(series.patches)
    return _mbox_results(text, mbox, count) + _am_results(scratch, mbox, want_tree, count)


def send_command(P, dry_run, mbox=None):
    """`send`: only --dry-run; the results, the recipients and where the mbox is."""
    if not dry_run:
        raise WorkbenchError('only --dry-run: this machine sends no mail. Send the mbox it '
                             'writes with `git send-email` from a machine that can.')
    require_source(P)
    mbox = mbox or default_mbox(P)
    results = send_results(P, mbox)
    print_results(results)
    with open(mbox) as fh:
        text = fh.read()
    for h in ('To', 'Cc'):
        m = re.search(rf'^{h}: (.*(?:\n[ \t].*)*)', text, re.M)
        if m:
            say(f'{h}: ' + ' '.join(m.group(1).split()))
    say(f'mbox: {mbox} (send with: git send-email {mbox})')
    exit_if_failed(results)
