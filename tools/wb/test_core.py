"""Unit tests of the workbench itself, on fixtures. Run by `tools/workbench test`
(or `python3 -m unittest discover -s tools/wb -t tools`)."""

import contextlib
import email
import io
import json
import os
import subprocess
import tempfile
import unittest
from unittest import mock

from wb import cli
from wb import core
from wb.core import WorkbenchError
from wb.cpio import Cpio

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8', errors='replace') as fh:
        return fh.read()


class TestSeries(unittest.TestCase):
    FILES = {'series', '0001-x86-ftrace-fix.patch', '0002-rust-add.patch'}

    def test_order_and_version(self):
        s = core.parse_series('# linux-source-7.3 7.3.4-1~bpo13+1\n\n0002-rust-add.patch\n'
                              '0001-x86-ftrace-fix.patch\n', self.FILES)
        self.assertEqual(s.patches, ['0002-rust-add.patch', '0001-x86-ftrace-fix.patch'])
        self.assertEqual(s.package_version, '7.3.4-1~bpo13+1')

    def test_missing_file(self):
        with self.assertRaisesRegex(WorkbenchError, r'series:2: 0003-gone.patch is listed but'):
            core.parse_series('0001-x86-ftrace-fix.patch\n0003-gone.patch\n0002-rust-add.patch\n',
                              self.FILES)

    def test_unlisted_file(self):
        with self.assertRaisesRegex(WorkbenchError, r'not in patches/series: 0002-rust-add.patch'):
            core.parse_series('0001-x86-ftrace-fix.patch\n', self.FILES)

    def test_cover_letter_need_not_be_listed(self):
        s = core.parse_series('0001-x86-ftrace-fix.patch\n0002-rust-add.patch\n',
                              self.FILES | {'0000-cover-letter.patch'})
        self.assertEqual(len(s.patches), 2)

    def test_duplicate_and_malformed(self):
        with self.assertRaisesRegex(WorkbenchError, 'listed twice'):
            core.parse_series('0001-x86-ftrace-fix.patch\n0001-x86-ftrace-fix.patch\n', self.FILES)
        with self.assertRaisesRegex(WorkbenchError, 'expected one file name'):
            core.parse_series('0001-x86-ftrace-fix.patch -p1\n', self.FILES)
        with self.assertRaisesRegex(WorkbenchError, 'is not a NNNN-name.patch'):
            core.parse_series('fix.diff\n', self.FILES | {'fix.diff'})

    def test_format_round_trip(self):
        names = ['0001-x86-ftrace-fix.patch', '0002-rust-add.patch']
        s = core.parse_series(core.format_series(names, '7.3.5-1'), self.FILES)
        self.assertEqual((s.patches, s.package_version), (names, '7.3.5-1'))


class TestConfig(unittest.TestCase):
    def test_dropped_option_is_named(self):
        frags = [('base.config', 'CONFIG_RUST=y\nCONFIG_KUNIT=y\n# CONFIG_FOO is not set\n')]
        dot = 'CONFIG_KUNIT=y\n# CONFIG_RUST is not set\n'
        self.assertEqual(core.verify_config(frags, dot),
                         ['CONFIG_RUST: base.config asks y, .config has n'])

    def test_later_fragment_overrides(self):
        frags = [('base.config', 'CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE=y\n'),
                 ('os.config', '# CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is not set\n'
                               'CONFIG_CC_OPTIMIZE_FOR_SIZE=y\n')]
        dot = ('# CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is not set\n'
               'CONFIG_CC_OPTIMIZE_FOR_SIZE=y\n')
        self.assertEqual(core.verify_config(frags, dot), [])

    def test_values_and_absent_unset(self):
        frags = [('f', 'CONFIG_NR_CPUS=4\n# CONFIG_X is not set\n')]
        self.assertEqual(core.verify_config(frags, 'CONFIG_NR_CPUS=4\n'), [])
        self.assertEqual(core.verify_config(frags, 'CONFIG_NR_CPUS=64\n'),
                         ['CONFIG_NR_CPUS: f asks 4, .config has 64'])
        self.assertEqual(core.verify_config(frags, 'CONFIG_NR_CPUS=4\nCONFIG_X=y\n'),
                         ['CONFIG_X: f asks n, .config has y'])

    def test_shipped_fragments_parse(self):
        for name in ('base.config', 'optimize-size.config', 'vng.config', 'series.config'):
            with open(os.path.join(cli.CI_KERNEL, name)) as fh:
                self.assertTrue(core.parse_config(fh.read()), name)
        with open(os.path.join(cli.CI_KERNEL, 'base.config')) as fh:
            base = core.parse_config(fh.read())
        for opt in ('RUST', 'FTRACE', 'FUNCTION_TRACER', 'DYNAMIC_FTRACE', 'FTRACE_STARTUP_TEST',
                    'KPROBES', 'OPTPROBES', 'KPROBES_ON_FTRACE', 'KPROBE_EVENTS', 'FPROBE',
                    'KALLSYMS_ALL', 'DEBUG_FS', 'UNWINDER_ORC', 'KUNIT', 'KPROBES_SANITY_TEST',
                    'FPROBE_SANITY_TEST', 'FUNCTION_GRAPH_TRACER', 'CC_OPTIMIZE_FOR_PERFORMANCE'):
            self.assertEqual(base.get('CONFIG_' + opt), 'y', opt)
        self.assertIn(base.get('CONFIG_SAMPLE_FTRACE_OPS'), ('y', 'm'))

    def test_fragments_per_config(self):
        names = lambda c, v=False: [os.path.basename(f) for f in cli.fragments(c, v)]
        self.assertEqual(names('default'), ['base.config', 'series.config'])
        self.assertEqual(names('default', True), ['base.config'])
        self.assertEqual(names('stress'), ['base.config', 'stress.config', 'series.config',
                                           'stress-series.config'])
        self.assertEqual(names('stress', True), ['base.config', 'stress.config'])
        self.assertEqual(names('norust'), ['base.config', 'norust.config',
                                           'norust-series.config'])
        self.assertEqual(names('noexecslot'), ['base.config', 'noexecslot-series.config'])
        for c in cli.CONFIGS:
            for f in cli.fragments(c) + cli.fragments(c, True):
                with open(f) as fh:
                    self.assertTrue(core.parse_config(fh.read()), f)
        with open(os.path.join(cli.CI_KERNEL, 'stress.config')) as fh:
            stress = core.parse_config(fh.read())
        for opt in ('PROVE_LOCKING', 'DEBUG_KMEMLEAK', 'DEBUG_VM', 'DEBUG_WX', 'FAULT_INJECTION'):
            self.assertEqual(stress.get('CONFIG_' + opt), 'y', opt)


class TestBuildLog(unittest.TestCase):
    def test_compiler_warnings(self):
        log = ('  CC      kernel/foo.o\n'
               '/src/kernel/foo.c:12:3: warning: unused variable \'x\' [-Wunused-variable]\n'
               '  RUSTC     kernel/execslot.o\n'
               'warning: unused import: `core::fmt::Write`\n'
               '   --> /src/kernel/execslot.rs:344:9\n'
               'vmlinux.o: warning: objtool: foo+0x1: call without frame pointer\n'
               '  CC      kernel/warning_free.o\n')
        got = core.compiler_warnings(log)
        self.assertEqual(len(got), 3, got)
        self.assertEqual(core.compiler_warnings('  CC      kernel/errseq.o\n  LD  vmlinux\n'), [])


class TestLog(unittest.TestCase):
    def test_splats(self):
        log = ('[    1.0] ok line\n'
               '[    2.5] ------------[ cut here ]------------\n'
               '[    2.5] WARNING: CPU: 0 PID: 1 at kernel/trace/ftrace.c:2000 ftrace_bug+0x1/0x2\n'
               '[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000001\n'
               '[    3.1] Oops: 0010 [#1] PREEMPT SMP\n'
               '[    3.2] Kernel panic - not syncing: Fatal exception\n')
        kinds = [k for k, _ in core.find_splats(log)]
        self.assertEqual(kinds, ['warning', 'warning', 'bug', 'oops', 'panic'])

    def test_lockdep_and_clean(self):
        self.assertEqual(core.find_splats('[ 5.0] Testing tracer function: PASSED\n'), [])
        kinds = [k for k, _ in core.find_splats(
            '[ 9.1] WARNING: possible recursive locking detected\n'
            '[ 9.2] INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n'
            '[ 9.3] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n')]
        self.assertEqual(kinds, ['warning', 'hung task', 'rcu stall'])

    def test_guest_exit(self):
        self.assertIsNone(core.guest_exit_status('WB-GUEST-START\n[ 1.0] x\n'))
        self.assertEqual(core.guest_exit_status('WB-GUEST-START\nWB-GUEST-EXIT 0\r\n'), 0)
        self.assertEqual(core.guest_exit_status('WB-GUEST-EXIT 3\n'), 3)

    def test_startup_tests(self):
        log = ('[    0.9] Testing tracer function: PASSED\n'
               '[    1.2] Testing dynamic ftrace: PASSED\n'
               '[    1.5] Testing dynamic ftrace ops #1: \n'
               '[    1.6] (1 0 1 0 0) \n'
               '[    1.7] (1 1 2 0 0) \n'
               '[    1.8] PASSED\n'
               '[    2.0] Running tests on trace events:\n'
               '[    2.1] Testing event sched_switch: OK\n'
               '[    2.15] trace_kprobe: Testing kprobe tracing: OK\n'
               '[    2.16] Running tests again, along with the function tracer\n'
               '[    2.17] Testing event sched_switch: OK\n'
               '[    2.2] Testing tracer function_graph: FAILED!\n'
               '[    2.3] Testing ftrace recursion: \n')
        got = [(r.name, r.ok) for r in core.parse_startup_tests(log)]
        self.assertEqual(got, [('startup: Testing tracer function', True),
                               ('startup: Testing dynamic ftrace', True),
                               ('startup: Testing dynamic ftrace ops #1', True),
                               ('startup: Testing event sched_switch', True),
                               ('startup: Testing kprobe tracing', True),
                               ('startup: Testing event sched_switch (run 2)', True),
                               ('startup: Testing tracer function_graph', False),
                               ('startup: Testing ftrace recursion', False)])

    def test_startup_oops_is_failure(self):
        log = ('[ 1.5] Testing dynamic ftrace ops #1: \n'
               '[ 1.6] (1 0 1 1 0) \n'
               '[ 1.7] BUG: kernel NULL pointer dereference, address: 0000000000000001\n'
               '[ 1.8] Oops: 0010 [#1] SMP\n')
        r = core.parse_startup_tests(log)
        self.assertEqual([(x.name, x.ok) for x in r], [('startup: Testing dynamic ftrace ops #1', False)])

    def test_guest_tests(self):
        got = core.parse_guest_tests('WB-TEST PASS kprobe: add vfs_read+9\n'
                                     '[ 3.0] WB-TEST FAIL kprobe: hit | grep failed\n'
                                     'WB-TEST-NOT a test\n')
        self.assertEqual([(r.name, r.ok, r.why) for r in got],
                         [('guest: kprobe: add vfs_read+9', True, ''),
                          ('guest: kprobe: hit', False, 'grep failed')])

    def test_real_console_log(self):
        log = fixture('boot-patched-default.log')
        self.assertEqual(core.find_splats(log), [])
        self.assertEqual(core.guest_exit_status(log), 0)
        startup = core.parse_startup_tests(log)
        self.assertGreater(len(startup), 10)
        self.assertTrue(all(r.ok for r in startup), [r.line() for r in startup if not r.ok])
        self.assertTrue(any(r.name == 'startup: Testing dynamic ftrace ops #1' for r in startup))
        guest = core.parse_guest_tests(log)
        self.assertGreater(len(guest), 5)


class TestMaintainers(unittest.TestCase):
    def test_extra_cc(self):
        out = ('Mike Rapoport <rppt@kernel.org> (maintainer:MEMORY MANAGEMENT - EXECMEM)\n'
               'Peter Zijlstra <peterz@infradead.org> (reviewer:X86)\n')
        to, cc = core.parse_get_maintainer(out, core.EXTRA_CC)
        self.assertEqual(to, ['Mike Rapoport <rppt@kernel.org>'])
        self.assertEqual(cc.count('Peter Zijlstra <peterz@infradead.org>'), 1)
        self.assertIn('Josh Poimboeuf <jpoimboe@kernel.org>', cc)
        self.assertIn('Adrian Hunter <adrian.hunter@intel.com>', cc)

    def test_sections(self):
        out = ('MEMORY MANAGEMENT - EXECMEM\nM:\tMike Rapoport <rppt@kernel.org>\n'
               'F:\tmm/execslot/\n\nTHE REST\nM:\tLinus Torvalds <torvalds@linux-foundation.org>\n')
        self.assertEqual(core.maintainer_sections(out), ['MEMORY MANAGEMENT - EXECMEM'])
        self.assertEqual(core.maintainer_sections('THE REST\nL:\tlinux-kernel@vger.kernel.org\n'), [])


class TestKunitJson(unittest.TestCase):
    def test_flatten(self):
        js = json.dumps({'name': 'KUnit Test Group', 'sub_groups': [
            {'name': 'kprobes_test', 'sub_groups': [], 'test_cases': [
                {'name': 'test_kprobe', 'status': 'PASS'},
                {'name': 'test_kretprobe', 'status': 'FAIL'},
                {'name': 'test_stacktrace_on_kretprobe', 'status': 'SKIP'}]},
            {'name': 'fprobe_test', 'sub_groups': [], 'test_cases': [
                {'name': 'test_fprobe', 'status': 'ERROR'}]}], 'test_cases': []})
        got = [(r.name, r.ok) for r in core.kunit_results_from_json(js)]
        self.assertEqual(got, [('kunit: kprobes_test.test_kprobe', True),
                               ('kunit: kprobes_test.test_kretprobe', False),
                               ('kunit: kprobes_test.test_stacktrace_on_kretprobe', None),
                               ('kunit: fprobe_test.test_fprobe', False)])

    def test_empty_is_error(self):
        with self.assertRaisesRegex(WorkbenchError, 'no KUnit test'):
            core.kunit_results_from_json('{"name": "KUnit Test Group", "sub_groups": [],'
                                         ' "test_cases": []}')

    def test_summary(self):
        rs = [core.Result('a', True), core.Result('b', False), core.Result('c', None)]
        self.assertEqual(core.summary_line(rs), '1 passed, 1 failed')
        self.assertEqual([r.line() for r in rs], ['PASS a', 'FAIL b', 'SKIP c'])


class TestCpio(unittest.TestCase):
    def test_cpio_lists_back(self):
        c = Cpio()
        c.dir('dev')
        c.chardev('dev/console', 5, 1)
        c.file('init', b'#!/bin/sh\n', 0o755)
        c.symlink('sh', 'busybox')
        with self.assertRaises(ValueError):
            c.file('init', b'')
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'x.cpio')
            with open(path, 'wb') as fh:
                fh.write(c.bytes())
            out = subprocess.run(['cpio', '-itv', '--quiet', '-F', path], capture_output=True,
                                 text=True, check=True).stdout.splitlines()
        self.assertEqual(len(out), 4)
        self.assertTrue(out[1].startswith('crw-------') and '5,' in out[1], out[1])
        self.assertTrue(out[2].startswith('-rwxr-xr-x') and out[2].endswith('init'), out[2])
        self.assertTrue(out[3].startswith('lrwxrwxrwx') and out[3].endswith('sh -> busybox'))


class TestCli(unittest.TestCase):
    def run_main(self, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli.main(argv)
            except SystemExit as e:
                rc = e.code
        return rc, err.getvalue()

    def test_rust_crate_object(self):
        # A file crate (dir.rs with its modules in dir/) and a directory crate
        # (dir/dir.rs with its modules beside it).
        with tempfile.TemporaryDirectory() as d:
            for f in ['arch/x86/kernel/ftrace_tramp.rs', 'arch/x86/kernel/ftrace_tramp/build.rs',
                      'mm/execslot/execslot.rs', 'mm/execslot/slots.rs', 'kernel/lone.rs']:
                os.makedirs(os.path.join(d, os.path.dirname(f)), exist_ok=True)
                open(os.path.join(d, f), 'w').close()
            obj = lambda f: cli.rust_crate_object(d, f)
            self.assertEqual(obj('arch/x86/kernel/ftrace_tramp/build.rs'),
                             'arch/x86/kernel/ftrace_tramp.o')
            self.assertEqual(obj('arch/x86/kernel/ftrace_tramp.rs'), 'arch/x86/kernel/ftrace_tramp.o')
            self.assertEqual(obj('mm/execslot/slots.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(obj('mm/execslot/execslot.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(obj('kernel/lone.rs'), 'kernel/lone.o')
            of = lambda f: cli.object_of(d, f)
            self.assertEqual(of('mm/execslot/slots.rs'), 'mm/execslot/execslot.o')
            self.assertEqual(of('mm/execslot/glue.c'), 'mm/execslot/glue.o')
            self.assertEqual(of('rust/kernel/execmem.rs'), 'rust/kernel.o')
            self.assertEqual(of('rust/bindings/bindings_helper.h'), 'rust/kernel.o')
            self.assertEqual(of('rust/helpers/mutex.c'), 'rust/kernel.o')
            self.assertIsNone(of('rust/kernel/Kconfig.test'))
            self.assertIsNone(of('Documentation/trace/execslot.rst'))
            self.assertIsNone(of('include/linux/execslot.h'))

    def test_unknown_command_and_option(self):
        self.assertEqual(self.run_main(['frobnicate'])[0], 2)
        self.assertEqual(self.run_main(['build', '--config', 'nope'])[0], 2)
        self.assertEqual(self.run_main([])[0], 2)

    def test_help_lists_every_command(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            with self.assertRaises(SystemExit):
                cli.main(['--help'])
        for c in ('setup', 'source', 'apply', 'build', 'boot', 'test', 'export', 'check', 'demo'):
            self.assertIn(c, out.getvalue())

    def test_missing_source_is_clear_error(self):
        with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {'KWB_CACHE': d}):
            for argv in (['apply'], ['build'], ['boot'], ['check'], ['export']):
                rc, err = self.run_main(argv)
                self.assertEqual(rc, 1, argv)
                self.assertIn('no base tree', err)

    def test_missing_tool_is_clear_error(self):
        with self.assertRaisesRegex(WorkbenchError, 'no-such-tool-xyz: not found'):
            cli.run(['no-such-tool-xyz'])

    def test_failed_command_names_itself(self):
        with self.assertRaisesRegex(WorkbenchError, r'false failed \(exit 1\)'):
            cli.run(['false'])

    def test_unknown_fragment_config(self):
        with self.assertRaisesRegex(WorkbenchError, 'unknown config'):
            cli.fragments('huge')

    def test_make_vars_per_config(self):
        self.assertEqual(cli.make_cmd('/b/patched-llvm', 'bzImage', jobs=2),
                         ['make', 'O=/b/patched-llvm', 'LLVM=-19', 'CLIPPY=1', '-j2', 'bzImage'])
        self.assertEqual(cli.make_cmd('/b/each-llvm/'), ['make', 'O=/b/each-llvm/', 'LLVM=-19',
                                                         'CLIPPY=1'])
        self.assertEqual(cli.make_cmd('/b/vanilla-default', 'modules'),
                         ['make', 'O=/b/vanilla-default', 'modules'])

    def test_kernel_path(self):
        self.assertEqual(cli.kernel_path(True, 'default'), 'mainline')
        self.assertEqual(cli.kernel_path(False, 'norust'), 'mainline')
        self.assertEqual(cli.kernel_path(False, 'noexecslot'), 'mainline')
        self.assertEqual(cli.kernel_path(False, 'llvm'), 'execslot')
        self.assertEqual(cli.kernel_path(False, 'stress'), 'execslot')

    def run_test_steps(self, argv):
        """cmd_test with every step mocked: which builds, boots and per-patch compiles
        it asks for, in order."""
        calls = []
        ok = [core.Result('x', True)]
        P = {'linux': '/t', 'build': '/b'}
        with contextlib.ExitStack() as st:
            for name, fn in {
                'cmd_setup': lambda a: None, 'unit_test_results': lambda: ok,
                'host_test_results': lambda: ok, 'cmd_source': lambda a: None,
                'paths': lambda: P, 'require_source': lambda: P,
                'check_results': lambda P: ok, 'send_results': lambda P: (ok, None),
                'cmd_apply': lambda a: None,
                'build': lambda P, v, c: calls.append(('build', c)),
                'rustdoc_results': lambda t, o: calls.append(('rustdoc', o)) or ok,
                'boot_results': lambda P, o, t, c, sc, to, append='', label=None, cpu=None:
                    calls.append(('boot', label or c, append, cpu) if cpu else
                                 ('boot', c, append)) or ok,
                'nopanic_results': lambda o: calls.append(('nopanic', o)) or ok,
                'stress_results': lambda P, n, to: calls.append(('stress', n)) or ok,
                'each_results': lambda P, c, quick: calls.append(('each', c, quick)) or ok,
            }.items():
                st.enter_context(mock.patch.object(cli, name, fn))
            st.enter_context(contextlib.redirect_stdout(io.StringIO()))
            st.enter_context(contextlib.redirect_stderr(io.StringIO()))
            cli.main(['test'] + argv)
        return calls

    MITIGATION_BOOTS = [
        ('build', 'mitigations'),
        ('boot', 'patched-mitigations-its', 'indirect_target_selection=force wb_quick=1 '
         'wb_mitigation=indirect_target_selection:Aligned', 'Skylake-Client'),
        ('boot', 'patched-mitigations-stuff', 'spectre_v2=retpoline retbleed=stuff wb_quick=1 '
         'wb_mitigation=retbleed:Stuffing', 'Skylake-Client')]

    def test_test_runs_the_plain_set(self):
        self.assertEqual(self.run_test_steps([]), [
            ('build', 'default'), ('rustdoc', '/b/patched-default'),
            ('nopanic', '/b/patched-default'),
            ('boot', 'default', 'wb_kprobes=1000 wb_kprobe_rounds=3'),
            ('build', 'os'), ('boot', 'os', ''), ('build', 'norust'), ('boot', 'norust', ''),
            *self.MITIGATION_BOOTS, ('build', 'modules'), ('build', 'nokprobes'),
            ('stress', 200), ('each', 'default', True)])

    def test_test_extended_adds_noexecslot_llvm_and_llvm_each(self):
        self.assertEqual(self.run_test_steps(['--extended', '--stress-cycles', '0']), [
            ('build', 'default'), ('rustdoc', '/b/patched-default'),
            ('nopanic', '/b/patched-default'),
            ('boot', 'default', 'wb_kprobes=1000 wb_kprobe_rounds=3'),
            ('build', 'os'), ('boot', 'os', ''), ('build', 'norust'), ('boot', 'norust', ''),
            *self.MITIGATION_BOOTS, ('build', 'modules'), ('build', 'nokprobes'),
            ('build', 'noexecslot'), ('boot', 'noexecslot', ''),
            ('build', 'llvm'), ('rustdoc', '/b/patched-llvm'),
            ('each', 'default', True), ('each', 'llvm', True)])

    def test_switch_points_name_patches_of_the_series(self):
        subjects = []
        for name in os.listdir(cli.PATCHES):
            if name.endswith('.patch') and not name.startswith('0000-'):
                with open(os.path.join(cli.PATCHES, name)) as fh:
                    msg = email.message_from_file(fh)
                subject = ' '.join(str(msg['Subject']).split())
                subjects.append(subject.split('] ', 1)[1])
        for subject, path in cli.SWITCH_POINTS.items():
            self.assertIn(subject, subjects)
            self.assertIn(path, ('ftrace', 'execslot'))

    def test_rustdoc_argv(self):
        line = ("savedcmd_kernel/execslot.o := OBJTREE=/b RUST_MODFILE=kernel/execslot "
                "clippy-driver --edition=2021 -Zbinary_dep_depinfo=y -Wmissing_docs "
                "-Zcrate-attr='feature(asm_goto)' --extern kernel --crate-type rlib -L ./rust/ "
                "--remap-path-prefix=/s/= --out-dir kernel/ --emit=dep-info=kernel/.x.d "
                "--emit=obj=kernel/execslot.o /s/kernel/execslot.rs  \n")
        env, argv = cli.rustdoc_argv(line, 'execslot', '/o')
        self.assertEqual(env, {'RUSTC_BOOTSTRAP': '1', 'OBJTREE': '/b',
                               'RUST_MODFILE': 'kernel/execslot'})
        self.assertEqual(argv, ['rustdoc', '--edition=2021', '-Wmissing_docs',
                                '-Zcrate-attr=feature(asm_goto)', '--extern', 'kernel',
                                '--crate-type', 'rlib', '-L', './rust/', '/s/kernel/execslot.rs',
                                '--crate-name', 'execslot', '--document-private-items',
                                '-Dwarnings', '-o', '/o'])
        with self.assertRaisesRegex(WorkbenchError, 'not a rustc command'):
            cli.rustdoc_argv('savedcmd_x.o := gcc -c x.c', 'x', '/o')

    def test_series_fragment_only_for_patched(self):
        names = lambda fs: [os.path.basename(f) for f in fs]
        self.assertEqual(names(cli.fragments('os', vanilla=True)),
                         ['base.config', 'optimize-size.config'])
        self.assertEqual(names(cli.fragments('os')),
                         ['base.config', 'optimize-size.config', 'series.config'])


class MemTest(unittest.TestCase):
    LOG = """[  12.3] WB-MEM-INFO kernel=7.3.4 quiet_functions=900
WB-MEM n=10 tramps=10 pages=1 slot_pages=1 slots=10 slot_bytes=2080 vmalloc_exec=0 empty_pages=0
WB-MEM-ABS n=10 tramps=21 pages=2 slot_pages=2 slots=21 slot_bytes=4368 vmalloc_exec=0 empty_pages=0
WB-MEM-BACK n=10 tramps=0 pages=0 slot_pages=0 slots=0 slot_bytes=0 vmalloc_exec=0 empty_pages=1
WB-MEM n=1 tramps=1 pages=1 slot_pages=0 slots=0 slot_bytes=0 vmalloc_exec=4096 empty_pages=0
WB-MEM-ABS n=1 tramps=13 pages=13 slot_pages=0 slots=0 slot_bytes=0 vmalloc_exec=0 empty_pages=0
WB-MEM-BACK n=1 tramps=0 pages=1 slot_pages=0 slots=0 slot_bytes=0 vmalloc_exec=0 empty_pages=0
"""

    def test_parse_and_rows(self):
        mem = core.parse_mem_lines(self.LOG)
        self.assertEqual(sorted(mem), [1, 10])
        r1, r10 = core.mem_rows('k', mem, 208)
        # Without slots the distinct pages count; with slots the cache's pages.
        self.assertEqual((r1['pages_added'], r1['total_pages']), (1, 13))
        self.assertEqual((r10['pages_added'], r10['total_pages']), (1, 2))
        self.assertAlmostEqual(r10['bytes_per_trampoline'], 2 * 4096 / 21)
        self.assertAlmostEqual(r10['packing'], 21 * 208 / (2 * 4096))
        self.assertEqual(r10['slot_bytes_per_trampoline'], 208)
        self.assertIsNone(r1['slot_bytes_per_trampoline'])
        self.assertEqual(r1['leaked_after_removal'], {'pages': 1})
        # The empty page kept for the next slot is shown, not counted as a leak.
        self.assertEqual(r10['leaked_after_removal'], {})
        self.assertEqual(r10['empty_pages_after_removal'], 1)
        text = core.mem_report([r1, r10], 'default', [1, 10])
        self.assertIn('  10 k', text)
        self.assertIn('none (+1 empty page kept)', text)

    def test_guest_error_and_incomplete(self):
        with self.assertRaisesRegex(WorkbenchError, 'only 3 functions'):
            core.parse_mem_lines('WB-MEM-ERROR n=10: only 3 functions to trace\n')
        with self.assertRaisesRegex(WorkbenchError, 'lacks'):
            core.parse_mem_lines('WB-MEM n=1 tramps=1 pages=1\n')
        mem = core.parse_mem_lines(self.LOG.split('WB-MEM-BACK n=10')[0])
        with self.assertRaisesRegex(WorkbenchError, 'no complete measurement for n=10'):
            core.mem_rows('k', mem, 208)

    def test_replace_block(self):
        text = 'a\n<!-- x-begin -->\nold\n<!-- x-end -->\nb\n'
        self.assertEqual(core.replace_block(text, 'x', 'new\n'),
                         'a\n<!-- x-begin -->\nnew\n<!-- x-end -->\nb\n')
        with self.assertRaises(WorkbenchError):
            core.replace_block('nothing', 'x', 'new\n')

class KpTest(unittest.TestCase):
    def test_parse_and_report(self):
        log = ("[ 1.0] WB-KP tag=kprobes round=1 n=1000 registered=1000 optimized=600 "
               "insn_slots=1000 optinsn_slots=600 insn_bytes=16000 optinsn_bytes=76800 "
               "kprobe_pages=24 tramp_pages=1 exec_pages=25 pending=0\n"
               "WB-KP tag=kprobes round=2 n=1000 registered=1 optimized=1 insn_slots=0 "
               "optinsn_slots=0 insn_bytes=0 optinsn_bytes=0 kprobe_pages=1 tramp_pages=1 "
               "exec_pages=2 pending=0\n")
        kp = core.parse_kp_lines(log)
        self.assertEqual(kp['kprobes']['exec_pages'], 25)   # the first round counts
        text = core.kp_report({'patched': kp, 'vanilla': {'kprobes': dict(
            kp['kprobes'], exec_pages=100)}})
        self.assertIn('kprobes: 100 pages vanilla, 25 patched (4.0x less)', text)
        with self.assertRaisesRegex(WorkbenchError, 'lacks'):
            core.parse_kp_lines('WB-KP tag=x round=1 n=1\n')


    def test_tag_order(self):
        self.assertEqual(sorted(['mix', 'kprobes1000', 'kprobes100'], key=core.kp_tag_order),
                         ['kprobes100', 'kprobes1000', 'mix'])


class CostTest(unittest.TestCase):
    LOG = ('[ 2.0] WB-COST what=instances n=10 create_us=844619 free_us=2519591 '
           'create2_us=844620 free2_us=2772000 '
           'setmem_create=0 setmem_free=3 flush_create=0 flush_free=6 ipi_create=149 '
           'ipi_free=233 tlb_create=1 tlb_free=2 split_create=0 split_free=1 '
           'collapse_create=0 collapse_free=1 tramps=21\n'
           'WB-PTDUMP what=instances n=10 pmd_kib=2048 pte_kib=8\n'
           'WB-CYCLES n=100 fillers=28 us=5000000 setmem=0 flush=0 ipi=10 tlb=0 split=0 '
           'collapse=0\n'
           'WB-CALL rel=1 regs=0 run=1 calls=200000 total_ns=3000000 ns_per_call=15\n'
           'WB-CALL rel=1 regs=0 run=2 calls=200000 total_ns=1000000 ns_per_call=5\n'
           'WB-CALL rel=1 regs=0 run=3 calls=200000 total_ns=2000000 ns_per_call=10\n')

    def test_parse_cost(self):
        cost = core.parse_cost_lines(self.LOG)
        self.assertEqual(list(cost), [('instances', 10)])
        self.assertEqual(cost[('instances', 10)]['ipi_free'], 233)
        self.assertEqual(cost[('instances', 10)]['split_free'], 1)
        with self.assertRaisesRegex(WorkbenchError, 'guest: WB-COST-ERROR x'):
            core.parse_cost_lines('WB-COST-ERROR x\n')
        with self.assertRaisesRegex(WorkbenchError, 'lacks'):
            core.parse_cost_lines('WB-COST what=ops n=1 create_us=1\n')
        ptdump = core.parse_ptdump_lines(self.LOG)
        self.assertEqual(ptdump, {('instances', 10): {'pmd_kib': 2048, 'pte_kib': 8}})
        text = core.cost_report({'patched': cost, 'vanilla': {('instances', 10): dict(
            cost[('instances', 10)], create_us=422309)}}, {'patched': ptdump})
        # Per object: microseconds of the icount clock / N = thousands of instructions;
        # the second run as a drift from the first.
        self.assertRegex(text, r'instances\s+10 patched\s+84461\.9 \(\+0\.0%\)\s+'
                         r'251959\.1 \(\+10\.0%\)\s+0/3\s+0/6\s+0/1\s+0/1\s+149/233\s+1/2')
        self.assertRegex(text, r'p/v\s+2\.00\s+1\.00')
        self.assertRegex(text, r'instances\s+10\s+-\s+2048 / 8')

    def test_text_lookups(self):
        log = ('[ 5.0] WB-TEXT n=100 loops=1000 in_tramp_ns=1596070 no_text_ns=2258722 '
               'stack_ns=11191220 depth=11\n'
               'WB-TEXT n=1 loops=1000 in_tramp_ns=111047 no_text_ns=401053 '
               'stack_ns=6749954 depth=11\n')
        text = core.parse_text_lines(log)
        self.assertEqual(sorted(text), [1, 100])
        report = core.text_report({'vanilla': text, 'patched': {100: dict(
            text[100], in_tramp_ns=159607)}})
        self.assertRegex(report, r'100 vanilla\s+1596\.1\s+2258\.7\s+11191\.2')
        self.assertRegex(report, r'v/p\s+10\.00\s+1\.00\s+1\.00')
        with self.assertRaisesRegex(WorkbenchError, 'guest: WB-TEXT-ERROR x'):
            core.parse_text_lines('WB-TEXT-ERROR x\n')
        with self.assertRaisesRegex(WorkbenchError, 'lacks'):
            core.parse_text_lines('WB-TEXT n=1 loops=3\n')

    def test_insn_plot(self):
        text = {'vanilla': {1: {'loops': 10, 'no_text_ns': 4000, 'stack_ns': 70000},
                            1000: {'loops': 10, 'no_text_ns': 200000, 'stack_ns': 300000}},
                'patched': {1: {'loops': 10, 'no_text_ns': 4000, 'stack_ns': 70000},
                            1000: {'loops': 10, 'no_text_ns': 4010, 'stack_ns': 70100}}}
        self.assertEqual(core.insn_plot_data(text).splitlines()[2:],
                         ['1 400.0 400.0 7000.0 7000.0', '1000 20000.0 401.0 30000.0 7010.0'])
        gp = core.insn_gnuplot_script('/x/i.dat', '/x/i.png', 't')
        self.assertIn("'/x/i.dat' using 1:5", gp)

    def test_cycles(self):
        cycles = core.parse_cycles_lines(self.LOG)
        self.assertEqual(cycles[100]['fillers'], 28)
        text = core.cycles_report({'patched': cycles})
        self.assertRegex(text, r'100 patched\s+28\s+50000\.0\s+0\s+0\s+0\s+0\s+10\s+0')
        with self.assertRaisesRegex(WorkbenchError, 'lacks'):
            core.parse_cycles_lines('WB-CYCLES n=1 us=3\n')

    def test_calls_spread(self):
        calls = core.parse_call_lines(self.LOG)
        self.assertEqual(calls, {(1, 0): [15.0, 5.0, 10.0]})   # total_ns / calls
        self.assertEqual(core.spread(calls[(1, 0)]), (10.0, 5.0, 15.0))
        self.assertEqual(core.spread([1, 2, 3, 10]), (2.5, 1, 10))
        text = core.call_report({'vanilla': {(1, 0): [20.0]}, 'patched': calls}, (3, 200000))
        self.assertIn('20.0 [20.0, 20.0]', text)
        self.assertIn('10.0 [5.0, 15.0]  0.50', text)

    BOOT = """Booting from ROM..\x1b[2J[    0.000000] Linux version 7.3.4+
[    0.366068] Running postponed tracer tests:
[    0.366100] Testing tracer function: PASSED
[    0.840985] Testing dynamic ftrace ops #1:\x20
[    0.954129] (1 0 1 0 0)\x20
[    4.155386] Testing multiple fgraph storage on a function: PASSED
[    4.267373] kprobes: kprobe jump-optimization is enabled.
[    4.346259] Running tests on trace events:
[    4.346261] Testing event initcall_finish:\x20
[   20.972456] Testing ftrace filter: OK
[   20.972866] trace_kprobe: Testing kprobe tracing: OK
[   20.980970] Run /init as init process\r
"""

    def test_boot_times(self):
        self.assertEqual(core.boot_times(self.BOOT), {
            'init': 20980970000, 'tracer_tests': 4267373000 - 366068000,
            'event_tests': 20972866000 - 4346259000})
        with self.assertRaisesRegex(WorkbenchError, 'Run /init'):
            core.boot_times(self.BOOT.replace('Run /init', 'Run /sbin/init'))
        text = core.boot_report({'vanilla': [core.boot_times(self.BOOT)] * 2,
                                 'patched': [core.boot_times(self.BOOT)]})
        self.assertRegex(text, r'init\s+vanilla\s+20980\.970\s+20980\.970\s+patched\s+'
                         r'20980\.970\s+p/v 1\.00')

    def test_split_probe_offset(self):
        dis = """
Disassembly of section .text:

ffffffff810539b0 <__change_page_attr_set_clr>:
ffffffff810539b0:\tcall   ffffffff81063e70 <__fentry__>
ffffffff81053fb2:\tcall   ffffffff81051480 <flush_tlb_all>
ffffffff81053fb7:\tjmp    ffffffff81053a00 <__change_page_attr_set_clr+0x50>
"""
        f = '__change_page_attr_set_clr'
        self.assertEqual(core.split_probe_offset(dis, f), f + '+0x602')
        with self.assertRaisesRegex(ValueError, '2 times'):
            core.split_probe_offset(dis + dis.splitlines()[5] + '\n', f)
        with self.assertRaisesRegex(ValueError, '0 times'):
            core.split_probe_offset(dis, 'other')

    def test_plot_data(self):
        rows = [{'kernel': 'vanilla', 'n': 10, 'total_pages': 21},
                {'kernel': 'patched', 'n': 10, 'total_pages': 2},
                {'kernel': 'vanilla', 'n': 1, 'total_pages': 12}]
        self.assertEqual(core.plot_data(rows).splitlines()[1:], ['10 84 8'])
        gp = core.gnuplot_script('/x/m.dat', '/x/m.png', 't')
        self.assertIn("set output '/x/m.png'", gp)
        self.assertIn("'/x/m.dat' using 1:3", gp)


class SendTest(unittest.TestCase):
    def test_get_maintainer(self):
        text = ('Steven Rostedt <rostedt@goodmis.org> (maintainer:TRACING)\n'
                'Mark Rutland <mark.rutland@arm.com> (reviewer:FUNCTION HOOKS (FTRACE))\n'
                'x86@kernel.org (maintainer:X86 ARCHITECTURE (32-BIT AND 64-BIT))\n'
                'linux-kernel@vger.kernel.org (open list)\n'
                'Steven Rostedt <rostedt@goodmis.org> (maintainer:FUNCTION HOOKS (FTRACE))\n'
                'fatal: ambiguous argument\n')
        to, cc = core.parse_get_maintainer(text)
        self.assertEqual(to, ['Steven Rostedt <rostedt@goodmis.org>', 'x86@kernel.org'])
        self.assertEqual(cc, ['Mark Rutland <mark.rutland@arm.com>',
                              'linux-kernel@vger.kernel.org'])
        with self.assertRaisesRegex(WorkbenchError, 'no maintainer'):
            core.parse_get_maintainer('linux-kernel@vger.kernel.org (open list)\n')

    def test_bench_summary(self):
        data = {'rows': [{'kernel': 'vanilla', 'n': 10, 'total_pages': 21},
                         {'kernel': 'patched', 'n': 10, 'total_pages': 2}],
                'kprobes': {'vanilla': {'mix': {'n': 1000, 'exec_pages': 240}},
                            'patched': {'mix': {'n': 1000, 'exec_pages': 40}}},
                'mix_instances': 200,
                'cost': {'vanilla': {'instances-10': {'setmem_create': 40, 'setmem_free': 0,
                                                      'split_create': 10, 'split_free': 9,
                                                      'create_us': 100, 'free_us': 200}},
                         'patched': {'instances-10': {'setmem_create': 0, 'setmem_free': 0,
                                                      'split_create': 0, 'split_free': 0,
                                                      'create_us': 90, 'free_us': 200}}},
                'cycles': {'vanilla': {'100': {'setmem': 600, 'flush': 1100}},
                           'patched': {'100': {'setmem': 0, 'flush': 0}}},
                'insn_per_call': {'vanilla': {'rel1-regs0': [43.0, 43.0]},
                                  'patched': {'rel1-regs0': [43.0, 43.1]}},
                'boot_ns': {'vanilla': [{'init': 100, 'tracer_tests': 10, 'event_tests': 50}],
                            'patched': [{'init': 99, 'tracer_tests': 9, 'event_tests': 50}]},
                'text_lookup': {'vanilla': {'1000': {'loops': 10, 'no_text_ns': 200000,
                                                     'stack_ns': 300000}},
                                'patched': {'1000': {'loops': 10, 'no_text_ns': 4000,
                                                     'stack_ns': 70000}}},
                'bloat_total': 'Total: Before=1, After=2, chg +100.00%'}
        text = core.bench_summary(data)
        self.assertIn('N=1000  20000 / 400, 30000 / 7000', text)
        self.assertIn('N=10    vanilla    84 KiB, patched    8 KiB (10.5x less)', text)
        self.assertIn('mix: 1000 kprobes + 200 instances: vanilla 960 KiB, patched 160 KiB '
                      '(6.0x less)', text)
        self.assertIn('set_memory_*() calls: vanilla 40 / 0, patched 0 / 0', text)
        self.assertIn('splits of a large mapping: vanilla 10 / 9, patched 0 / 0', text)
        self.assertIn('instructions, patched/vanilla: 0.90 / 1.00', text)
        self.assertIn('100 create/free cycles of one trampoline, vanilla / patched:\n'
                      '    set_memory_*() calls 600 / 0, TLB flushes 1100 / 0', text)
        self.assertIn('rel1 regs0 43.0 / 43.0', text)
        self.assertIn('boot, instructions patched/vanilla: to init 0.99,\n'
                      '    ftrace startup tests 0.90 (tracers), 1.00 (events)', text)
        self.assertIn('vmlinux: Total: Before=1', text)


if __name__ == '__main__':
    unittest.main()


class TestPanicPaths(unittest.TestCase):
    DIS = '''
ffffffff81000000 <__execslot_lookup>:
ffffffff81000000:	call   ffffffff81000100 <_RNvCs1_8execslot7page_of>
ffffffff81000005:	jmp    ffffffff81000009 <__execslot_lookup+0x9>
ffffffff81000009:	ret

ffffffff81000100 <_RNvCs1_8execslot7page_of>:
ffffffff81000100:	call   ffffffff81000300 <mutex_lock>
ffffffff81000105:	ret

ffffffff81000200 <execslot_free_locked>:
ffffffff81000200:	call   ffffffff81000400 <_RNvCs1_8execslot4free>
ffffffff81000205:	ret

ffffffff81000300 <mutex_lock>:
ffffffff81000300:	call   ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>
ffffffff81000305:	ret

ffffffff81000400 <_RNvCs1_8execslot4free>:
ffffffff81000400:	jmp    ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>

ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>:
ffffffff81000500:	ud2
'''

    def test_graph(self):
        g = core.call_graph(self.DIS)
        self.assertEqual(g['__execslot_lookup'], {'_RNvCs1_8execslot7page_of'})
        self.assertEqual(g['_RNvCs1_8execslot4free'],
                         {'_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow'})

    def test_paths(self):
        g = core.call_graph(self.DIS)
        found = core.panic_paths(g, ['__execslot_lookup', 'execslot_free_locked'])
        # C functions are not followed: mutex_lock's call does not count.
        self.assertIsNone(found['__execslot_lookup'])
        self.assertEqual(found['execslot_free_locked'][:2],
                         ['execslot_free_locked', '_RNvCs1_8execslot4free'])
        with self.assertRaises(WorkbenchError):
            core.panic_paths(g, ['nosuch'])

    def test_leaf(self):
        g = core.call_graph(self.DIS)
        g['__execslot_contains'] = {'__x86_return_thunk'}
        found = core.non_leaf_calls(g, ['__execslot_lookup', '__execslot_contains'])
        self.assertEqual(found['__execslot_lookup'], ['_RNvCs1_8execslot7page_of'])
        self.assertEqual(found['__execslot_contains'], [])
        g['__execslot_contains'].add('__fentry__')
        self.assertEqual(core.non_leaf_calls(g, ['__execslot_contains'])['__execslot_contains'],
                         ['__fentry__'])
        with self.assertRaises(WorkbenchError):
            core.non_leaf_calls(g, ['nosuch'])


class TestFixes(unittest.TestCase):
    PATCH = ('Subject: [PATCH 01/13] x86/ftrace: Do not\n\nBody.\n\n'
             'Fixes: 0c3772a8db1f ("x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP")\n'
             'Cc: stable@vger.kernel.org\n---\n diff\nFixes: 111111111111 ("not a tag")\n')

    def test_parse(self):
        self.assertEqual(core.parse_fixes(self.PATCH),
                         [('0c3772a8db1f', 'x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP')])

    def test_check(self):
        base = {'arch/x86/kernel/ftrace.c': '\tif (ftrace_is_jmp(addr)) {\n'}.get
        self.assertIsNone(core.check_fixes(core.parse_fixes(self.PATCH)[0], base))
        # v1's tag: the generic flag's commit, which did not add the bit-0 read.
        self.assertIn('not a commit', core.check_fixes(
            ('25e4e3565d45', 'ftrace: Introduce FTRACE_OPS_FL_JMP'), base))
        self.assertIn('is "x86/ftrace', core.check_fixes(('0c3772a8db1f', 'x'), base))
        self.assertIn('lacks', core.check_fixes(
            core.parse_fixes(self.PATCH)[0], {'arch/x86/kernel/ftrace.c': ''}.get))


class TestConfigs(unittest.TestCase):
    def test_no_rust_option_without_rust(self):
        """A config that turns Rust off asks for no option that needs it (Kconfig would
        drop it, and `build` would rightly fail on that)."""
        for config in cli.CONFIGS:
            for vanilla in (False, True):
                merged = {}
                for path in cli.fragments(config, vanilla):
                    with open(path) as fh:
                        merged.update(core.parse_config(fh.read()))
                if merged.get('CONFIG_RUST') != 'n':
                    continue
                on = [k for k, v in merged.items()
                      if v != 'n' and k.startswith('CONFIG_RUST')]
                self.assertEqual(on, [], f'{config} (vanilla={vanilla})')


class GuestShellTest(unittest.TestCase):
    """Functions of the guest scripts, run by the busybox that the guest runs them with."""

    def shell_function(self, script, name):
        with open(os.path.join(cli.GUEST, script)) as fh:
            text = fh.read()
        start = text.index(f'\n{name}() {{\n') + 1
        return text[start:text.index('\n}\n', start) + 3]

    def test_mark_us_reads_microseconds_in_decimal(self):
        # busybox awk reads a number with a leading zero as octal: 21.026220 s must give
        # 21026220 us, not 21011408.
        busybox = cli.shutil.which('busybox') or '/bin/busybox'
        self.assertTrue(os.path.isfile(busybox), 'busybox-static is a setup dependency')
        script = ('dmesg() { printf "[   21.026220] wb-mark a-1\\n[    3.000100] wb-mark b\\n"; }\n'
                  'err() { echo "ERR $*"; exit 1; }\n'
                  + self.shell_function('tramp-cost.sh', 'mark_us')
                  + 'mark_us a-1; mark_us b; mark_us c\n')
        p = subprocess.run([busybox, 'sh', '-c', script], capture_output=True, text=True)
        self.assertEqual(p.stdout.split('\n')[:3], ['21026220', '3000100',
                                                     'ERR no printk timestamp for mark c '
                                                     '(CONFIG_PRINTK_TIME?)'])
        self.assertEqual(p.returncode, 1)
