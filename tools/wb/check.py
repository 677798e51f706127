"""`check`: the series applied to a clean base in the scratch worktree, every added file
compared with the repository's copy, rustfmt per Rust file per patch and at the tip,
checkpatch --strict, the Fixes: tags against the public record and MAINTAINERS coverage
of every added file; with --each, the kernel at every patch (each.py)."""

import os
import re
import subprocess
import tempfile

from .each import each_results
from .patches import repo_overlay_files
from .results import Result, exit_if_failed, print_results, summary_line
from .settings import PATCHES, REPO
from .source import added_files, apply_in_scratch, require_source
from .util import WorkbenchError, git, one_line, run

# checkpatch messages that the series expects:
# - no Signed-off-by: the person who sends the patches adds it;
# - unknown commit ids: the base tree is Debian's tarball, without upstream history;
# - "added file(s), does MAINTAINERS need updating?" on a patch that adds a file to a
#   directory an earlier patch put under a MAINTAINERS entry: `check` proves instead
#   that every file the series adds is covered (`check: MAINTAINERS covers ...`).
CHECKPATCH_IGNORE = ['MISSING_SIGN_OFF', 'UNKNOWN_COMMIT_ID', 'FILE_PATH_CHANGES']

# What the public record says about the commits that the series' Fixes: tags name:
# the subject, and a line that the commit added to the base tree (the line the fix is
# about). The base is a tarball without history, so the check reads the record here.
# 0c3772a8db1f: bpf-next, "[PATCH bpf-next v3 2/6] x86/ftrace: implement
# DYNAMIC_FTRACE_WITH_JMP" (20251118123639.688444-3-dongml2@chinatelecom.cn), which
# made ftrace_call_replace() read bit 0 of its target; 25e4e3565d45 before it only
# added the generic FTRACE_OPS_FL_JMP flag.
# 673feb9d76ab: v4.13, Steven Rostedt, "ftrace: Add :mod: caching infrastructure to
# trace_array", which added ftrace_add_mod() and the instance's mod_trace/mod_notrace
# lists; named with this subject by the later fixes of that code: 9ef16693aff8 (the
# reference on the trace_array in ftrace_regex_open()) and Xiu Jianfeng's INIT_LIST_HEAD()
# in ftrace_add_mod() (20221116015207.30858-1-xiujianfeng@huawei.com).
# b355247df104: v6.14, in the trace/for-next push log with that subject; added
# trace_events.c's cache_mod() and tr->mod_events, as later fixes of s_start()/s_next()
# that cite it show (Adrian Huang's, Sasha Levin's).
# aba4b5c22cba: v4.15, Steven Rostedt, "ftrace: Save module init functions kallsyms
# symbols for tracing", which added struct ftrace_mod_map, save_ftrace_mod_rec() and
# ftrace_mod_address_lookup(); named with this subject by Ye Bin's later fix of the
# lookup's use after free (20250529111955.2349189-2-yebin@huaweicloud.com).
FIXES_RECORD = {
    '0c3772a8db1f': ('x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP',
                     'arch/x86/kernel/ftrace.c', 'if (ftrace_is_jmp(addr)) {'),
    'b355247df104': ('tracing: Cache ":mod:" events for modules not loaded yet',
                     'kernel/trace/trace_events.c',
                     'static int cache_mod(struct trace_array *tr, const char *mod, int set,'),
    '673feb9d76ab': ('ftrace: Add :mod: caching infrastructure to trace_array',
                     'kernel/trace/ftrace.c',
                     'static int ftrace_add_mod(struct trace_array *tr,'),
    'aba4b5c22cba': ('ftrace: Save module init functions kallsyms symbols for tracing',
                     'kernel/trace/ftrace.c',
                     'static void save_ftrace_mod_rec(struct ftrace_mod_map *mod_map,'),
}

_FIXES_RE = re.compile(r'^Fixes: ([0-9a-f]{12,40}) \("(.*)"\)$', re.M)


def changelog(patch_text):
    """A format-patch file's headers and changelog: what comes before the first '---'."""
    return patch_text.split('\n---\n', 1)[0]


def parse_fixes(patch_text):
    """The (id, subject) of each Fixes: tag in a patch's changelog."""
    return _FIXES_RE.findall(changelog(patch_text))


def check_fixes(fixes, base_file_text):
    """Why a Fixes: tag (id, subject) is wrong by FIXES_RECORD, or None.
    base_file_text(path) gives a file of the base tree."""
    cid, subject = fixes
    rec = FIXES_RECORD.get(cid[:12])
    if rec is None:
        return f'{cid[:12]} is not a commit the record names (FIXES_RECORD)'
    want, path, line = rec
    if subject != want:
        return f'{cid[:12]} is "{want}", not "{subject}"'
    if line not in base_file_text(path):
        return f'{path} of the base lacks the line {cid[:12]} added: {line}'
    return None


def maintainer_sections(text):
    """The MAINTAINERS sections that `get_maintainer.pl --sections` printed for a file,
    THE REST excepted: the section titles, lines that are not `X:\tvalue` fields."""
    names = []
    for line in text.splitlines():
        if not line.strip() or re.match(r'^[A-Z]:\t', line):
            continue
        if line.strip() != 'THE REST':
            names.append(line.strip())
    return names


def overlay_results(scratch, added):
    """The repository's copy of every file the series adds is that of the patched tree,
    and the repository holds no other."""
    results = []
    for f in added:
        mine = os.path.join(REPO, f)
        if not os.path.isfile(mine):
            results.append(Result(f'check: overlay {f}', False, 'missing in the repo'))
            continue
        with open(mine, 'rb') as a, open(os.path.join(scratch, f), 'rb') as b:
            same = a.read() == b.read()
        results.append(Result(f'check: overlay {f}', same,
                              '' if same else 'differs from the patched tree'))
    for f in repo_overlay_files():
        if f not in added:
            results.append(Result(f'check: overlay {f}', False,
                                  'in the repo but not added by the series'))
    return results


def _rustfmt_commit(scratch, commit):
    """rustfmt --check of the Rust files `commit` adds or changes, as it leaves them."""
    subject = git('log', '-1', '--format=%s', commit, cwd=scratch)
    changed = [f for f in git('diff-tree', '--no-commit-id', '--name-only', '-r',
                              '--diff-filter=AM', commit, cwd=scratch).split()
               if f.endswith('.rs')]
    if not changed:
        return []
    results = []
    with tempfile.TemporaryDirectory() as d:
        dirs = sorted({os.path.dirname(f) or '.' for f in changed})
        archive = subprocess.run(['git', 'archive', '--format=tar', commit, '--', *dirs],
                                 cwd=scratch, capture_output=True, check=True).stdout
        subprocess.run(['tar', '-x', '-C', d], input=archive, check=True)
        for f in changed:
            p = run(['rustfmt', '--color', 'never', '--edition', '2021', '--config-path',
                     os.path.join(scratch, '.rustfmt.toml'), '--check',
                     os.path.join(d, f)], capture=True, check=False)
            results.append(Result(f'rustfmt {f} in "{subject}"', p.returncode == 0,
                                  (p.stdout + p.stderr).strip()[:300]))
    return results


def rustfmt_results(scratch, tip):
    # Every Rust file as each patch leaves it is rustfmt-clean (the kernel's .rustfmt.toml).
    # rustfmt follows `mod` items and reports nothing on standard input, so each check
    # runs on a copy of the directories of the files that patch changes (with their
    # subdirectories, where the modules of a crate root live) as that patch leaves them.
    results = []
    for commit in git('rev-list', '--reverse', f'base..{tip}', cwd=scratch).split():
        results += _rustfmt_commit(scratch, commit)
    # And kbuild's own check over the whole tree at the tip, as a maintainer runs it.
    with tempfile.TemporaryDirectory() as d:
        p = run(['make', '-s', f'O={d}', 'LLVM=-19', 'rustfmtcheck'], cwd=scratch,
                capture=True, check=False)
    results.append(Result('make LLVM=-19 rustfmtcheck', p.returncode == 0,
                          one_line(p.stdout + p.stderr, 500)))
    return results


def patch_results(scratch, name):
    """One patch file: its Fixes: tags (with Cc: stable) and checkpatch --strict."""
    results = []
    # Fixes: tags against what the public record says those commits did.
    with open(os.path.join(PATCHES, name)) as fh:
        text = fh.read()
    fixes = parse_fixes(text)
    for tag in fixes:
        why = check_fixes(tag, lambda path: git('show', f'base:{path}', cwd=scratch))
        results.append(Result(f'check: {name} Fixes: {tag[0][:12]}', why is None, why or ''))
    if fixes:
        results.append(Result(f'check: {name} Cc: stable with its Fixes:',
                              'Cc: stable@vger.kernel.org' in changelog(text)))
    p = run(['perl', 'scripts/checkpatch.pl', '--strict', '--no-summary', '--terse',
             '--ignore', ','.join(CHECKPATCH_IGNORE), os.path.join(PATCHES, name)],
            cwd=scratch, capture=True, check=False)
    msgs = [ln for ln in p.stdout.splitlines() if re.search(r'\b(ERROR|WARNING|CHECK):', ln)]
    results.append(Result(f'checkpatch --strict {name}', p.returncode == 0 and not msgs,
                          '; '.join(msgs)[:500]))
    return results


def maintainers_results(scratch):
    """Every file the series adds is in a MAINTAINERS section other than THE REST."""
    results = []
    for f in added_files(scratch, 'HEAD'):
        p = run(['perl', 'scripts/get_maintainer.pl', '--no-git', '--no-git-fallback',
                 '--sections', '-f', f], cwd=scratch, capture=True, check=False)
        sections = maintainer_sections(p.stdout)
        results.append(Result(f'check: MAINTAINERS covers {f}',
                              p.returncode == 0 and bool(sections),
                              'only THE REST' if p.returncode == 0 else p.stderr[:300]))
    return results


def check_results(P):
    """Apply the series to a clean base; compare the added files; checkpatch each patch."""
    try:
        commit, series = apply_in_scratch(P)
    except WorkbenchError as e:
        return [Result('check: series applies', False, str(e).splitlines()[0])]
    results = [Result(f'check: series applies ({len(series.patches)} patches)', True)]
    scratch = P.scratch
    results += overlay_results(scratch, added_files(scratch, commit))
    results += rustfmt_results(scratch, commit)
    for name in series.patches:
        results += patch_results(scratch, name)
    results += maintainers_results(scratch)
    return results


def check_command(P, each=False, config='default', quick=False):
    """`check`, then with `each` the kernel at every patch; prints every result and the
    summary line."""
    require_source(P)
    results = check_results(P)
    if each and all(r.ok is not False for r in results[:1]):
        results += each_results(P, config, quick=quick)
    print_results(results)
    print(summary_line(results))
    exit_if_failed(results)
