"""Unit tests of testrun.py: which builds, boots and per-patch compiles `test` runs."""

import contextlib
import dataclasses
import io
import unittest
from unittest import mock

from wb import cli, testrun
from wb.results import Result
from wb.settings import Paths


class TestTestRun(unittest.TestCase):
    def run_test_steps(self, argv):
        """run_tests (through the command line) with every step mocked: which builds,
        boots and per-patch compiles it asks for, in order."""
        calls = []
        ok = [Result('x', True)]
        P = dataclasses.replace(Paths.at('/c'), linux='/t', build='/b')
        with contextlib.ExitStack() as st:
            for name, fn in {
                'setup': lambda: None, 'unit_test_results': lambda: ok,
                'host_test_results': lambda: ok, 'fetch_source': lambda P, update: None,
                'require_source': lambda P: P,
                'check_results': lambda P: ok, 'send_results': lambda P: ok,
                'apply_series': lambda P, force: None,
                'build': lambda P, v, c: calls.append(('build', ('vanilla-' if v else '') + c)),
                'rustdoc_results': lambda t, o: calls.append(('rustdoc', o)) or ok,
                'boot_results': lambda P, o, t, c, sc, to, append='', label=None, cpu=None:
                    calls.append(('boot', label or c, append, cpu) if cpu else
                                 ('boot', c, append)) or ok,
                'nopanic_results': lambda o: calls.append(('nopanic', o)) or ok,
                'stress_results': lambda P, n, to, hostile: (calls.append(('stress', n, hostile)) or ok,
                                                              '/log'),
                'realtools_results': lambda P, v, to:
                    calls.append(('real tools', 'vanilla' if v else 'patched')) or ok,
                'each_results': lambda P, c, quick: calls.append(('each', c, quick)) or ok,
            }.items():
                st.enter_context(mock.patch.object(testrun, name, fn))
            st.enter_context(mock.patch.object(Paths, 'from_env', lambda: P))
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
            ('build', 'vng'), ('rustdoc', '/b/patched-vng'), ('nopanic', '/b/patched-vng'),
            ('boot', 'vng', 'wb_kprobes=1000 wb_kprobe_rounds=2'), ('real tools', 'patched'),
            ('build', 'norust'), ('boot', 'norust', 'wb_quick=1'), ('stress', 200, 500)])

    def test_test_extended_adds_the_other_configs_vanilla_real_tools_and_each(self):
        self.assertEqual(self.run_test_steps(['--extended', '--stress-cycles', '0']), [
            ('build', 'vng'), ('rustdoc', '/b/patched-vng'), ('nopanic', '/b/patched-vng'),
            ('boot', 'vng', 'wb_kprobes=1000 wb_kprobe_rounds=2'), ('real tools', 'patched'),
            ('build', 'norust'), ('boot', 'norust', 'wb_quick=1'),
            ('build', 'os'), ('boot', 'os', ''), *self.MITIGATION_BOOTS,
            ('build', 'modules'), ('build', 'nokprobes'),
            ('build', 'noexecslot'), ('boot', 'noexecslot', ''),
            ('build', 'llvm'), ('rustdoc', '/b/patched-llvm'),
            ('build', 'vanilla-vng'), ('real tools', 'vanilla'),
            ('each', 'default', True), ('each', 'llvm', True)])

    def test_host_tests_draw_the_same_property_cases_every_run(self):
        """The property tests (in the first cargo run; loom's has none) run at the fixed
        seed."""
        envs = []

        def fake_run(argv, cwd, capture, check, env):
            envs.append(env)
            return mock.Mock(returncode=0, stdout='test a ... ok\n', stderr='')

        with mock.patch.object(testrun, 'run', fake_run):
            got = testrun.host_test_results()
        self.assertTrue(all(r.ok for r in got))
        self.assertEqual([e.get('PROPTEST_RNG_SEED') for e in envs],
                         [testrun.PROPTEST_SEED, None])
        self.assertEqual(envs[1]['RUSTFLAGS'], '--cfg loom')


if __name__ == '__main__':
    unittest.main()
