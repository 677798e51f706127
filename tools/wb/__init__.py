"""The kernel workbench (tools/workbench), one module per role:

cli        the command line: arguments to the function that does the command
util       running programs and git, messages, WorkbenchError
settings   paths: the repository's directories and the cache's (Paths, from KWB_CACHE)
kconfig    the configs (CONFIGS), their Kconfig fragments, the path each one runs
patches    patches/series and the repository's copies of the added files
source     setup (tools/lib/setup.sh), the base source, the worktrees, apply
kbuild     configure, make, modules, rustdoc, the no-panic check
vmlinux    symbols, ELF bytes and the call graph of a built vmlinux
boot       initramfs, QEMU and virtme-ng, console-log splats, a test boot's results
ktap       the guest's lines of a console log, their KTAP failures, bench figure lines
results    test results; startup tests, KUnit and the guest's KTAP, bench figures, boot times
each       `check --each`: the kernel at every patch
check      check: the series against a clean base
series     export, the cover letter, send (patches.py reads patches/series)
testrun    test and stress, and the tables of which kernels `test` builds and boots
bench      bench: both kernels booted, figures collected and written
benchreport  the bench's tables, plots and the cover letter's figures
demo       the demo
templates  `fixtures`: the ftrace templates of built kernels for the host tests
cpio       the newc cpio writer of the initramfs

Unit tests: test_<module>.py, on fixtures (tools/wb/fixtures/).
"""
