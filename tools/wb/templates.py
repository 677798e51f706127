"""`fixtures`: the ftrace templates (symbols and bytes of ftrace_caller and
ftrace_regs_caller) of built vmlinux files, written to tools/host/fixtures/templates/ for
the host tests of the trampoline builder."""

import os

from .kconfig import parse_config
from .settings import REPO
from .util import WorkbenchError, run, say
from .vmlinux import elf_read, parse_nm

FIXTURE_DIR = os.path.join(REPO, 'tools', 'host', 'fixtures', 'templates')

TEMPLATE_SYMBOLS = (
    'ftrace_caller', 'ftrace_caller_op_ptr', 'ftrace_call', 'ftrace_caller_end',
    'ftrace_regs_caller', 'ftrace_regs_caller_op_ptr', 'ftrace_regs_call',
    'ftrace_regs_caller_jmp', 'ftrace_regs_caller_end',
    'function_trace_op', 'ftrace_stub',
)
# Present only in some configurations.
OPTIONAL_TEMPLATE_SYMBOLS = ('__x86_return_thunk', 'its_return_thunk', '__x86_call_depth')
TEMPLATE_CONFIGS = ('CONFIG_FRAME_POINTER', 'CONFIG_MITIGATION_RETPOLINE',
                    'CONFIG_MITIGATION_RETHUNK', 'CONFIG_MITIGATION_CALL_DEPTH_TRACKING',
                    'CONFIG_MITIGATION_SLS', 'CONFIG_MITIGATION_ITS')


def template_fixture(nm_text, elf_data, dotconfig_text, label):
    """The fixture text for tools/host/fixtures/templates/<label>.txt."""
    syms = parse_nm(nm_text)
    missing = [s for s in TEMPLATE_SYMBOLS if s not in syms]
    if missing:
        raise WorkbenchError(f'vmlinux lacks {", ".join(missing)} (is FUNCTION_TRACER on?)')
    config = parse_config(dotconfig_text)
    out = [f'# ftrace templates of vmlinux, config {label}; regenerate with',
           '# `tools/workbench fixtures` after `tools/workbench build --config ' + label + '`.']
    for c in TEMPLATE_CONFIGS:
        out.append(f'config {c} {config.get(c, "n")}')
    for s in TEMPLATE_SYMBOLS + OPTIONAL_TEMPLATE_SYMBOLS:
        if s in syms:
            out.append(f'sym {s} {syms[s]:016x}')
    for start, end in (('ftrace_caller', 'ftrace_caller_end'),
                       ('ftrace_regs_caller', 'ftrace_regs_caller_end')):
        code = elf_read(elf_data, syms[start], syms[end] - syms[start])
        out.append(f'code {start} {code.hex()}')
    return '\n'.join(out) + '\n'


def write_fixtures(P, configs):
    """Write the ftrace template fixtures of the host tests from built vmlinux files."""
    os.makedirs(FIXTURE_DIR, exist_ok=True)
    for config in configs:
        out = P.build_dir(False, config)
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
            fh.write(template_fixture(nm, elf, dotconfig, config))
        say(f'wrote {os.path.relpath(path, REPO)}')
