"""Building kernels with kbuild: configure from the ci/kernel fragments, make (failing on
any compiler warning), modules, the objects a patch changes, rustdoc of the series' Rust
crates, and the no-panic check of the built vmlinux."""

import os
import re
import shlex
import shutil
import subprocess
import time

from .kconfig import MAINLINE_CONFIGS, MAKE_VARS, fragments, verify_config
from .results import Result, exit_if_failed, print_results
from .settings import GUEST_MOD, REPO
from .source import require_source
from .util import WorkbenchError, git, run, say, tail, tool_env
from .vmlinux import call_graph, non_leaf_calls, panic_paths


def make_cmd(out, *targets, jobs=None):
    """make in build directory `out`, named `<kind>-<config>` (Paths.build_dir(),
    each-<config>), with the make variables of its config."""
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
        problems = verify_config(texts, fh.read())
    if problems:
        raise WorkbenchError('Kconfig dropped options the fragments ask for:\n  '
                             + '\n  '.join(problems))


# gcc: "kernel/foo.c:12:3: warning: ..."; rustc: "warning: unused import: ..."; ld/objtool.
WARNING_RE = re.compile(r'(^|: )warning: ', re.I)


def compiler_warnings(build_log):
    """Lines of a kbuild log that report a warning."""
    return [ln.strip() for ln in build_log.splitlines()
            if WARNING_RE.search(ln) and not ln.lstrip().startswith(('warning: 1 warning',))]


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
        warnings = compiler_warnings(fh.read())
    if warnings:
        raise WorkbenchError(f'{label} has {len(warnings)} warning(s); see {log}:\n'
                             + '\n'.join(warnings[:10]))


def _new_log(log):
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, 'w'):
        pass


def make_kernel(tree, out, config, log, vanilla, label, jobs=None, verify=True):
    """Configure and build bzImage and modules of `tree` in `out`."""
    _new_log(log)
    configure(tree, out, config, log, vanilla, verify=verify)
    run_make(tree, out, ['bzImage', 'modules'], log, f'build {label}', jobs=jobs)


def compile_objects(tree, out, config, log, objs, label):
    """Configure `out` for `tree` and compile `objs` (nothing to do if empty)."""
    _new_log(log)
    configure(tree, out, config, log, False, verify=False)
    if objs:
        run_make(tree, out, objs, log, f'compile {label}')


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
    src = os.path.join(P.cache, 'guest-mod', os.path.basename(os.path.normpath(out)))
    shutil.rmtree(src, ignore_errors=True)
    shutil.copytree(GUEST_MOD, src)
    log = os.path.join(P.logs, f'guest-mod-{os.path.basename(os.path.normpath(out))}.log')
    run(make_cmd(out, f'M={src}', 'modules'), cwd=tree, log=log,
        what=f'make M={src} modules')
    run(make_cmd(out, f'M={src}', 'modules_install',
                 f'INSTALL_MOD_PATH={os.path.join(out, "modinstall")}', 'INSTALL_MOD_STRIP=1'),
        cwd=tree, log=log, what=f'make M={src} modules_install')


def build(P, vanilla, config, jobs=None):
    """The vanilla or patched kernel of `config`, built with its modules installed;
    returns its build directory."""
    tree = P.tree(vanilla)
    out = P.build_dir(vanilla, config)
    kind = 'vanilla' if vanilla else 'patched'
    log = os.path.join(P.logs, f'build-{kind}-{config}.log')
    t0 = time.time()
    make_kernel(tree, out, config, log, vanilla, f'{kind} {config}', jobs=jobs)
    install_modules(tree, out, log)
    say(f'built {kind} {config} in {time.time() - t0:.0f}s: {out}/arch/x86/boot/bzImage')
    return out


def build_command(P, vanilla, config, jobs=None, rustdoc=False):
    """`build`, then, for a patched kernel with the allocator, the no-panic check of its
    vmlinux (a change that brings a panic into a lookup or a free fails here, at once,
    rather than first in `test`), and with `rustdoc` one result line per crate of the
    series."""
    require_source(P)
    out = build(P, vanilla, config, jobs)
    if not vanilla and config not in MAINLINE_CONFIGS:
        results = nopanic_results(out)
        print_results(results)
        exit_if_failed(results)
    if rustdoc:
        if vanilla:
            raise WorkbenchError('--rustdoc documents the series\' Rust crates: not with --vanilla')
        results = rustdoc_results(P.linux, out)
        print_results(results)
        exit_if_failed(results)
    return out


# ---------------------------------------------------------------------------
# The objects of changed files

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


# ---------------------------------------------------------------------------
# rustdoc

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
            results.append(Result(name, False, f'{cmdf} missing: build the kernel first'))
            continue
        with open(cmdf) as fh:
            env, argv = rustdoc_argv(fh.readline(), b[:-2], outdir)
        p = run(argv, cwd=out, capture=True, check=False, env=env)
        results.append(Result(name, p.returncode == 0,
                              ' '.join((p.stderr or p.stdout).split())[:600]))
    if not results:
        results.append(Result('rustdoc', False, 'the series adds no Rust crate'))
    return results


# ---------------------------------------------------------------------------
# No panic on the paths that must not panic

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
    graph = call_graph(p.stdout)
    results = []
    for root, chain in panic_paths(graph, NOPANIC_ROOTS).items():
        results.append(Result(f'no panic reachable from {root}', chain is None,
                              '' if chain is None else ' -> '.join(chain)[:600]))
    for root, calls in non_leaf_calls(graph, LEAF_ROOTS).items():
        results.append(Result(f'{root} calls no function (its kprobe blacklist entry '
                              f'covers all its code; no __fentry__)', not calls,
                              ', '.join(calls)[:600]))
    return results
