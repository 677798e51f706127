"""Unit tests of kbuild.py: build logs, make command lines, the objects of changed
files, rustdoc command lines."""

import contextlib
import io
import os
import tempfile
import unittest
from unittest import mock

from wb import kbuild
from wb.results import Result
from wb.util import WorkbenchError


class TestBuildLog(unittest.TestCase):
    def test_compiler_warnings(self):
        log = ('  CC      kernel/foo.o\n'
               '/src/kernel/foo.c:12:3: warning: unused variable \'x\' [-Wunused-variable]\n'
               '  RUSTC     kernel/execslot.o\n'
               'warning: unused import: `core::fmt::Write`\n'
               '   --> /src/kernel/execslot.rs:344:9\n'
               'vmlinux.o: warning: objtool: foo+0x1: call without frame pointer\n'
               '  CC      kernel/warning_free.o\n')
        got = kbuild.compiler_warnings(log)
        self.assertEqual(len(got), 3, got)
        self.assertEqual(kbuild.compiler_warnings('  CC      kernel/errseq.o\n  LD  vmlinux\n'), [])


class TestKbuild(unittest.TestCase):
    def test_rust_crate_object(self):
        # A file crate (dir.rs with its modules in dir/) and a directory crate
        # (dir/dir.rs with its modules beside it).
        with tempfile.TemporaryDirectory() as d:
            for f in ['arch/x86/kernel/ftrace_tramp.rs', 'arch/x86/kernel/ftrace_tramp/build.rs',
                      'mm/execslot/execslot.rs', 'mm/execslot/slots.rs', 'kernel/lone.rs']:
                os.makedirs(os.path.join(d, os.path.dirname(f)), exist_ok=True)
                open(os.path.join(d, f), 'w').close()
            obj = lambda f: kbuild.rust_crate_object(d, f)
            self.assertEqual(obj('arch/x86/kernel/ftrace_tramp/build.rs'),
                             'arch/x86/kernel/ftrace_tramp.o')
            self.assertEqual(obj('arch/x86/kernel/ftrace_tramp.rs'), 'arch/x86/kernel/ftrace_tramp.o')
            self.assertEqual(obj('mm/execslot/slots.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(obj('mm/execslot/execslot.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(obj('kernel/lone.rs'), 'kernel/lone.o')
            of = lambda f: kbuild.object_of(d, f)
            self.assertEqual(of('mm/execslot/slots.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(of('mm/execslot/glue.c'), 'mm/execslot/glue.o')
            self.assertEqual(of('rust/kernel/execmem.rs'), 'rust/kernel.o')
            self.assertEqual(of('rust/bindings/bindings_helper.h'), 'rust/kernel.o')
            self.assertEqual(of('rust/helpers/mutex.c'), 'rust/kernel.o')
            self.assertIsNone(of('rust/kernel/Kconfig.test'))
            self.assertIsNone(of('Documentation/trace/execslot.rst'))
            self.assertIsNone(of('include/linux/execslot.h'))

    def test_make_vars_per_config(self):
        self.assertEqual(kbuild.make_cmd('/b/patched-llvm', 'bzImage', jobs=2),
                         ['make', 'O=/b/patched-llvm', 'LLVM=-19', 'CLIPPY=1', '-j2', 'bzImage'])
        self.assertEqual(kbuild.make_cmd('/b/each-llvm/'), ['make', 'O=/b/each-llvm/', 'LLVM=-19',
                                                         'CLIPPY=1'])
        self.assertEqual(kbuild.make_cmd('/b/vanilla-default', 'modules'),
                         ['make', 'O=/b/vanilla-default', 'modules'])

    def test_rustdoc_argv(self):
        line = ("savedcmd_kernel/execslot.o := OBJTREE=/b RUST_MODFILE=kernel/execslot "
                "clippy-driver --edition=2021 -Zbinary_dep_depinfo=y -Wmissing_docs "
                "-Zcrate-attr='feature(asm_goto)' --extern kernel --crate-type rlib -L ./rust/ "
                "--remap-path-prefix=/s/= --out-dir kernel/ --emit=dep-info=kernel/.x.d "
                "--emit=obj=kernel/execslot.o /s/kernel/execslot.rs  \n")
        env, argv = kbuild.rustdoc_argv(line, 'execslot', '/o')
        self.assertEqual(env, {'RUSTC_BOOTSTRAP': '1', 'OBJTREE': '/b',
                               'RUST_MODFILE': 'kernel/execslot'})
        self.assertEqual(argv, ['rustdoc', '--edition=2021', '-Wmissing_docs',
                                '-Zcrate-attr=feature(asm_goto)', '--extern', 'kernel',
                                '--crate-type', 'rlib', '-L', './rust/', '/s/kernel/execslot.rs',
                                '--crate-name', 'execslot', '--document-private-items',
                                '-Dwarnings', '-o', '/o'])
        with self.assertRaisesRegex(WorkbenchError, 'not a rustc command'):
            kbuild.rustdoc_argv('savedcmd_x.o := gcc -c x.c', 'x', '/o')


class TestBuildCommand(unittest.TestCase):
    def run_build(self, vanilla, config, nopanic_ok=True):
        """build_command() with the build mocked: the build directories whose vmlinux it
        checked for panics, and the exit code (None: no exit)."""
        checked = []

        def nopanic(out):
            checked.append(out)
            return [Result('no panic reachable from execslot_free_locked', nopanic_ok)]
        code = None
        with contextlib.ExitStack() as st:
            st.enter_context(mock.patch.object(kbuild, 'require_source', lambda P: None))
            st.enter_context(mock.patch.object(
                kbuild, 'build', lambda P, v, c, j: f'/b/{"vanilla" if v else "patched"}-{c}'))
            st.enter_context(mock.patch.object(kbuild, 'nopanic_results', nopanic))
            st.enter_context(contextlib.redirect_stdout(io.StringIO()))
            try:
                kbuild.build_command(None, vanilla, config)
            except SystemExit as e:
                code = e.code
        return checked, code

    def test_patched_builds_are_checked_for_panics(self):
        self.assertEqual(self.run_build(False, 'vng'), (['/b/patched-vng'], None))
        self.assertEqual(self.run_build(False, 'stress'), (['/b/patched-stress'], None))

    def test_a_reachable_panic_fails_the_build_command(self):
        checked, code = self.run_build(False, 'vng', nopanic_ok=False)
        self.assertEqual(checked, ['/b/patched-vng'])
        self.assertNotIn(code, (None, 0))

    def test_kernels_without_the_allocator_are_not_checked(self):
        self.assertEqual(self.run_build(True, 'vng'), ([], None))
        self.assertEqual(self.run_build(False, 'norust'), ([], None))
        self.assertEqual(self.run_build(False, 'noexecslot'), ([], None))


if __name__ == '__main__':
    unittest.main()
