"""`demo`: on a fresh machine, set up, fetch the base, apply, build and boot; show N
tracing instances' trampolines and the executable memory behind them
(tools/guest/demo.sh)."""

from .boot import qemu_boot
from .kbuild import build
from .kconfig import kernel_path
from .results import demo_lines
from .source import apply_series, fetch_source, setup
from .util import WorkbenchError


def demo(P, instances, timeout, force=False):
    setup()
    fetch_source(P, update=False)
    apply_series(P, force=force)
    out = build(P, False, 'default')
    res = qemu_boot(P, out, P.linux, f'sh /wb/demo.sh {instances}', 'demo',
                    timeout, kernel_path(False, 'default'), echo=False)
    for line in demo_lines(res.text):
        print(line)
    problems = res.problems()
    if problems:
        raise WorkbenchError(f'demo boot failed ({res.log_path}):\n  ' + '\n  '.join(problems))
