"""Booting a built kernel: the busybox initramfs, QEMU (and virtme-ng), the console log's
splats and guest exit status, and the results of a test boot (KUnit, startup tests,
guest tests)."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

from .cpio import Cpio
from .kconfig import kernel_path
from .ktap import RESULT_RE as RESULT_LINE_RE
from .ktap import guest_lines
from .results import (Result, guest_results, kunit_results_from_json, parse_startup_tests,
                      prefixed, strip_console_prefix)
from .settings import GUEST, GUEST_BIN
from .util import WorkbenchError, run, say, tool_env

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
    outdir = os.path.join(P.cache, 'guest-bin')
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


def _read(path):
    with open(path, 'rb') as fh:
        return fh.read()


def _add_busybox_root(c):
    """The directories, device nodes, busybox and /init of the initramfs."""
    for d in ('bin', 'sbin', 'usr', 'usr/bin', 'usr/sbin', 'dev', 'proc', 'sys', 'tmp', 'root',
              'etc', 'lib', 'wb'):
        c.dir(d)
    c.chardev('dev/console', 5, 1)
    c.chardev('dev/null', 1, 3, 0o666)
    busybox = shutil.which('busybox') or '/bin/busybox'
    if not os.path.isfile(busybox):
        raise WorkbenchError('busybox not found (busybox-static; run `tools/workbench setup`)')
    c.file('bin/busybox', _read(busybox), 0o755)
    c.symlink('bin/sh', 'busybox')
    c.file('init', INIT.encode(), 0o755)
    c.file('etc/passwd', b'root:x:0:0:root:/root:/bin/sh\n')


def build_initramfs(P, out, tree, cmd, dest):
    """The initramfs at `dest`: busybox, the guest scripts in /wb (cmd.sh runs `cmd`),
    the guest binaries, the kernel's modules and the base tree's ftrace selftests."""
    c = Cpio()
    _add_busybox_root(c)
    for f in sorted(os.listdir(GUEST)):
        c.file(f'wb/{f}', _read(os.path.join(GUEST, f)), 0o755)
    c.file('wb/cmd.sh', (cmd + '\n').encode(), 0o755)
    for name, exe in guest_binaries(P).items():
        c.file(f'usr/bin/{name}', _read(exe), 0o755)
    mods = os.path.join(out, 'modinstall', 'lib', 'modules')
    if os.path.isdir(mods):
        c.tree(mods, 'lib/modules')
    ftrace_st = os.path.join(tree, 'tools', 'testing', 'selftests', 'ftrace')
    if os.path.isdir(ftrace_st):
        c.dir('selftests')
        c.tree(ftrace_st, 'selftests/ftrace')
    with open(dest, 'wb') as fh:
        fh.write(c.bytes())


# ---------------------------------------------------------------------------
# Console log analysis

# Each is a sign of a kernel bug; a boot whose log has one fails.
SPLAT_PATTERNS = [
    ('panic', re.compile(r'Kernel panic - not syncing')),
    ('oops', re.compile(r'\bOops: |general protection fault|BUG: unable to handle')),
    ('bug', re.compile(r'\bBUG: |kernel BUG at')),
    ('warning', re.compile(r'WARNING: |-+\[ cut here \]-+')),
    ('lockdep', re.compile(r'possible (recursive|circular) locking|inconsistent lock state|'
                           r'suspicious RCU usage|lock held when returning')),
    ('hung task', re.compile(r'INFO: task .* blocked for more than')),
    ('rcu stall', re.compile(r'rcu_\w+ detected stalls|rcu: INFO: ')),
    ('sanitizer', re.compile(r'\b(UBSAN|KASAN|KCSAN|KFENCE): ')),
    ('memory leak', re.compile(r'kmemleak: \d+ new suspected memory leaks')),
    ('ftrace bug', re.compile(r'ftrace faulted|ftrace failed to modify|ftrace record flags')),
    ('W+X', re.compile(r'x86/mm: Found insecure W\+X mapping')),
]


def find_splats(log_text):
    """Return [(kind, line)] for every line that shows a kernel bug."""
    found = []
    for raw in log_text.splitlines():
        line = strip_console_prefix(raw)
        for kind, pat in SPLAT_PATTERNS:
            if pat.search(line):
                found.append((kind, line))
                break
    return found


# The splats whose context a record keeps (at the start of a kernel line), and the lines
# of it that say where and how.
_EXCERPT_START = re.compile(r'^(?:Oops: |general protection fault|BUG: |kernel BUG at |'
                            r'WARNING: )')
_EXCERPT_BUG = ('BUG: ', 'kernel BUG at ')
_EXCERPT_CPU = re.compile(r'^CPU: ')
_EXCERPT_RIP = re.compile(r'^RIP: ')
# A reliable frame (no "? "), with its module and build ID, if any.
_EXCERPT_FRAME = re.compile(r'^\s*([\w.]+\+0x[0-9a-f]+/0x[0-9a-f]+)'
                            r'(?: \[\w+(?: [0-9a-f]+)?\])?$')
_EXCERPT_END = re.compile(r'---\[ end trace|^Kernel panic')


def splat_excerpts(log_text, most=3, frames=8):
    """For the first `most` splats (oopses, BUGs, warnings) of a console log, one line
    each: the splat's own line, its CPU and RIP lines, and the first `frames` reliable
    functions of its call trace (not the "? " guesses): enough for a record to say where
    the kernel died once its console log is gone. A splat ends at its end marker or at
    the next one's first line; lockdep's warnings have no RIP, and their trace is the
    one after "Call Trace:", not the dependency chain before it."""
    lines = [strip_console_prefix(raw) for raw in log_text.splitlines()]
    out = []
    at = 0
    while at < len(lines) and len(out) < most:
        line = lines[at]
        at += 1
        if not _EXCERPT_START.match(line):
            continue
        cpu = rip = None
        trace = []
        in_trace = False
        for follow in lines[at:at + 300]:
            # The "Oops:" line that a BUG prints before its CPU line is the same splat.
            same = (line.startswith(_EXCERPT_BUG) and follow.startswith('Oops: ')
                    and cpu is None and rip is None)
            if _EXCERPT_END.search(follow) or (_EXCERPT_START.match(follow) and not same):
                break
            at += 1
            if cpu is None and _EXCERPT_CPU.match(follow):
                cpu = follow.split(' Tainted:')[0].split(' Not tainted')[0]
            elif rip is None and _EXCERPT_RIP.match(follow):
                rip = follow
            elif follow.startswith('Call Trace:'):
                in_trace = True
            elif in_trace and (m := _EXCERPT_FRAME.match(follow)) and len(trace) < frames:
                trace.append(m.group(1))
        parts = [line] + [p for p in (cpu, rip) if p]
        if trace:
            parts.append('Call Trace: ' + ' < '.join(trace))
        out.append('; '.join(parts))
    return out


# Printed by INIT (and by the command that vng_boot() runs) after the guest command.
GUEST_EXIT_RE = re.compile(r'^WB-GUEST-EXIT (\d+)$')


def guest_exit_status(log_text):
    """The guest command's exit status, or None if it never finished."""
    status = None
    for raw in log_text.splitlines():
        m = GUEST_EXIT_RE.match(strip_console_prefix(raw))
        if m:
            status = int(m.group(1))
    return status


class BootResult:
    def __init__(self, log_path, text, timed_out, exit_status, elapsed):
        self.log_path = log_path
        self.text = text
        self.timed_out = timed_out
        self.exit_status = exit_status
        self.elapsed = elapsed
        self.splats = find_splats(text)

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


# ---------------------------------------------------------------------------
# QEMU

# Deterministic guests: one TCG thread runs both vCPUs and the guest clock advances one
# nanosecond per instruction executed (shift=0); sleep=off lets an idle guest jump to its
# next timer at once. tsc=reliable: with two sockets the kernel would otherwise distrust
# the TSC and keep time in jiffies (4 ms steps). The RTC starts at a fixed date and runs
# on the guest clock: the boot-time wall clock seeds the kernel's random numbers (module
# load offset, hash seeds, freelist order), and from the host's date each boot drew
# others, so some counts (hash chains, where modules and trampolines land, the phase of
# grace-period waits) moved from run to run of one kernel.
ICOUNT_ARGS = ['-icount', 'shift=0,sleep=off', '-rtc', 'base=2026-01-01T00:00:00,clock=vm']
ICOUNT_APPEND = ' tsc=reliable'


def qemu_argv(qemu, bz, initrd, path, append='', cpu=None, icount=False):
    # -accel tcg: a nested KVM guest hangs at kernel entry on these machines.
    # Two sockets: without ACPI the kernel sees only the CPUs in SeaBIOS's MP table,
    # which lists one per socket ("-smp 2" alone boots one CPU).
    return [qemu, '-accel', 'tcg', '-m', '2048', '-smp', '2,sockets=2,cores=1',
            *(['-cpu', cpu] if cpu else []), *(ICOUNT_ARGS if icount else []),
            '-nographic', '-no-reboot',
            '-monitor', 'none', '-serial', 'stdio', '-kernel', bz, '-initrd', initrd,
            '-append', f'console=ttyS0 panic=-1 oops=panic loglevel=7 wb_path={path} '
            f'{append}{ICOUNT_APPEND if icount else ""}'.strip()]


def run_console(argv, log_path, timeout, echo=False):
    """Run QEMU, its console written to `log_path` (and echoed) as it comes; returns the
    console text and whether the timeout killed it."""
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
    return b''.join(chunks).decode(errors='replace'), timed_out


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
    os.makedirs(P.boot, exist_ok=True)
    os.makedirs(P.logs, exist_ok=True)
    initrd = os.path.join(P.boot, f'{name}.cpio')
    build_initramfs(P, out, tree, cmd, initrd)
    log_path = os.path.join(P.logs, f'boot-{name}.log')
    argv = qemu_argv(qemu, bz, initrd, path, append, cpu, icount)
    say(f'booting {name} under QEMU/TCG (timeout {timeout}s, console log {log_path})')
    t0 = time.time()
    text, timed_out = run_console(argv, log_path, timeout, echo)
    return BootResult(log_path, text, timed_out, guest_exit_status(text), time.time() - t0)


def boot_command(P, vanilla, config, cmd, timeout, quiet=False, append='', icount=False):
    """`boot`: the built kernel of `config` booted with `cmd`; fails on any problem."""
    cmd = cmd or 'uname -a; cat /proc/cmdline'
    name = f'{"vanilla" if vanilla else "patched"}-{config}'
    res = qemu_boot(P, P.build_dir(vanilla, config), P.tree(vanilla), cmd, name, timeout,
                    kernel_path(vanilla, config), echo=not quiet, append=append,
                    icount=icount)
    problems = res.problems()
    if problems:
        raise WorkbenchError(f'boot {name} failed ({res.log_path}):\n  ' + '\n  '.join(problems))
    say(f'boot {name}: guest command exited 0 in {res.elapsed:.0f}s; no splat in the log')


# ---------------------------------------------------------------------------
# virtme-ng

def _ensure_vng(P):
    """virtme-ng, from PyPI into its own venv in the cache; returns the venv."""
    venv = os.path.join(P.cache, 'venv-vng')
    vng = os.path.join(venv, 'bin', 'vng')
    if not os.path.isfile(vng):
        say('installing virtme-ng into ' + venv)
        run([sys.executable, '-m', 'venv', venv], what='python3 -m venv')
        run([os.path.join(venv, 'bin', 'pip'), 'install', '-q', 'virtme-ng'],
            what='pip install virtme-ng')
    return venv


def _run_vng(argv, env, timeout, log_path):
    """Run vng; its output written to `log_path`. Returns (text, timed out)."""
    try:
        p = subprocess.run(argv, env={**tool_env(), **env}, timeout=timeout,
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
        out, timed_out = p.stdout, False
    except subprocess.TimeoutExpired as e:
        out, timed_out = e.stdout or b'', True
    with open(log_path, 'wb') as fh:
        fh.write(out)
    return out.decode(errors='replace'), timed_out


def vng_run(P, vanilla, cmd, timeout, append='', label=None, echo=False):
    """Boot the kernel of the vng config with virtme-ng over the host's root, run `cmd`
    (a shell command line) in it, and return the BootResult; the console log goes to
    logs/boot-<label>.log."""
    venv = _ensure_vng(P)
    vng = os.path.join(venv, 'bin', 'vng')
    bz = os.path.join(P.build_dir(vanilla, 'vng'), 'arch', 'x86', 'boot', 'bzImage')
    if not os.path.isfile(bz):
        raise WorkbenchError(f'{bz} does not exist: run `tools/workbench build --config vng`')
    label = label or f'{"vanilla" if vanilla else "patched"}-vng'
    env = {'PATH': os.path.join(venv, 'bin') + ':' + tool_env()['PATH']}
    # No KVM (it hangs here), 9p rather than virtiofs, PCI virtio rather than microvm's
    # MMIO: what the vng config fragment provides. 7.3 needs the 9p tag as root=.
    # virtme-ng-init finds no virtio-serial port for the script's exit status without
    # udev on this host ("console fallback", vng exits 255), so the status travels on
    # the console between the markers, like in `boot`.
    cmdline = f'root=/dev/root wb_path={kernel_path(vanilla, "vng")} {append}'.strip()
    argv = [vng, '--run', bz, '--disable-kvm', '--force-9p', '--disable-microvm',
            '--memory', '2G', '--verbose', '--append', cmdline,
            '--exec', f'echo WB-GUEST-START; {cmd}; echo "WB-GUEST-EXIT $?"']
    os.makedirs(P.logs, exist_ok=True)
    log_path = os.path.join(P.logs, f'boot-{label}.log')
    say(f'vng --run {bz} (console log {log_path})')
    t0 = time.time()
    text, timed_out = _run_vng(argv, env, timeout, log_path)
    if echo:
        sys.stdout.write(text)
    return BootResult(log_path, text, timed_out, guest_exit_status(text), time.time() - t0)


def vng_boot(P, vanilla, cmd, timeout, quiet=False, append=''):
    """`boot --vng`: the kernel of the vng config booted by virtme-ng over the host's root."""
    res = vng_run(P, vanilla, cmd or 'uname -a; cat /proc/cmdline', timeout, append, echo=not quiet)
    problems = res.problems()
    if problems:
        raise WorkbenchError('vng boot failed:\n  ' + '\n  '.join(problems))
    say(f'vng boot: guest command exited 0 in {res.elapsed:.0f}s; no splat in the log')


def realtools_results(P, vanilla, timeout):
    """tools/guest/realtools.sh in a virtme-ng guest of the vng kernel: Debian's
    trace-cmd and perf, from the host's root, against the kernel; one result per KTAP
    check, plus one for the boot. ftrace=nop on the command line skips the ftrace
    startup tests, which the QEMU boots of `test` run."""
    label = f'{"vanilla" if vanilla else "patched"}-vng'
    res = vng_run(P, vanilla, f'sh {os.path.join(GUEST, "realtools.sh")}', timeout,
                  append='ftrace=nop', label=f'{label}-realtools')
    problems = res.problems()
    results = [Result(f'{label}: real tools: boot clean, guest script finished',
                      not problems, '; '.join(problems)[:600])]
    results += prefixed(f'{label}: real tools', guest_ktap_results(P.tree(vanilla), res))
    return results


# ---------------------------------------------------------------------------
# Test boots

def kunit_parse(tree, lines):
    """The JSON that the base tree's own `kunit.py parse --json` makes of `lines`."""
    kunit = os.path.join(tree, 'tools', 'testing', 'kunit', 'kunit.py')
    with tempfile.NamedTemporaryFile('w', suffix='.log') as log, \
            tempfile.NamedTemporaryFile('r', suffix='.json') as js:
        log.write('\n'.join(lines) + '\n')
        log.flush()
        p = run([sys.executable, kunit, 'parse', f'--json={js.name}', log.name],
                capture=True, check=False)
        text = js.read()
    if not text.strip():
        raise WorkbenchError(f'kunit.py parse gave no JSON (exit {p.returncode}): '
                             + (p.stderr or p.stdout).strip()[-300:])
    return text


def kunit_results(tree, res):
    """KUnit's results: the kernel's console lines up to the guest's start, through
    `kunit.py parse` (the guest's own KTAP follows and is read apart)."""
    lines = res.text.splitlines()
    if 'WB-GUEST-START' in lines:
        lines = lines[:lines.index('WB-GUEST-START')]
    return kunit_results_from_json(kunit_parse(tree, lines))


def guest_ktap_results(tree, res, what='guest tests'):
    """The guest scripts' KTAP results through `kunit.py parse`; a failed result if
    the guest printed no KTAP result at all."""
    lines = guest_lines(res.text)
    if not any(RESULT_LINE_RE.match(line) for line in lines):
        return [Result(what, False, 'no KTAP result line from the guest')]
    try:
        return guest_results(kunit_parse(tree, lines), lines)
    except WorkbenchError as e:
        return [Result(what, False, str(e))]


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
    results.append(Result(f'{label}: boot clean, guest script finished',
                          not problems, '; '.join(problems)[:600]))
    try:
        results += prefixed(label, kunit_results(tree, res))
    except WorkbenchError as e:
        results.append(Result(f'{label}: kunit', False, str(e)))
    startup = parse_startup_tests(res.text)
    if not startup:
        results.append(Result(f'{label}: startup tests', False,
                              'no FTRACE_STARTUP_TEST result in the console log'))
    results += prefixed(label, startup)
    results += prefixed(label, guest_ktap_results(tree, res))
    return results
