"""The kernel configs (ci/kernel/ fragments), which of them `test` builds and boots, and
reading and verifying Kconfig fragments and .config files."""

import os
import re

from .settings import CI_KERNEL
from .util import WorkbenchError

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
# Patched kernels of these configs keep the mainline C paths (no execslot).
MAINLINE_CONFIGS = ('norust', 'noexecslot')


def kernel_path(vanilla, config):
    """What a kernel must run, for the guest scripts (wb_path= on its command line):
    the series' slots ("execslot") or the mainline C paths ("mainline"); "ftrace"
    (trampolines in slots, kprobes not yet) is for the middle of the series."""
    return 'mainline' if vanilla or config in MAINLINE_CONFIGS else 'execslot'


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


CONFIG_SET_RE = re.compile(r'^(CONFIG_[A-Za-z0-9_]+)=(.*)$')
CONFIG_UNSET_RE = re.compile(r'^# (CONFIG_[A-Za-z0-9_]+) is not set$')


def parse_config(text):
    """Map CONFIG_X -> value ('n' for '# CONFIG_X is not set'); last one wins."""
    values = {}
    for raw in text.splitlines():
        line = raw.strip()
        m = CONFIG_SET_RE.match(line)
        if m:
            values[m.group(1)] = m.group(2)
            continue
        m = CONFIG_UNSET_RE.match(line)
        if m:
            values[m.group(1)] = 'n'
    return values


def verify_config(fragments, dotconfig_text):
    """Return a list of 'CONFIG_X: asked y, got n' for every option Kconfig dropped.

    fragments: list of (name, text), later fragments override earlier ones.
    """
    wanted = {}
    origin = {}
    for name, text in fragments:
        for key, val in parse_config(text).items():
            wanted[key] = val
            origin[key] = name
    have = parse_config(dotconfig_text)
    problems = []
    for key in sorted(wanted):
        want = wanted[key]
        got = have.get(key, 'n')
        if want != got:
            problems.append(f'{key}: {origin[key]} asks {want}, .config has {got}')
    return problems
