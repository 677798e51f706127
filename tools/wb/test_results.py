"""Unit tests of results.py: results, and the test results read from a console log
(startup tests, the guest's KTAP, KUnit), on fixtures and on a real boot log."""

import json
import os
import unittest

from wb import boot, ktap, results
from wb.util import WorkbenchError


FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures')


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding='utf-8', errors='replace') as fh:
        return fh.read()


class TestLog(unittest.TestCase):
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
        got = [(r.name, r.ok) for r in results.parse_startup_tests(log)]
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
        r = results.parse_startup_tests(log)
        self.assertEqual([(x.name, x.ok) for x in r], [('startup: Testing dynamic ftrace ops #1', False)])

    def test_guest_tests(self):
        from wb.test_ktap import JSON, LOG
        got = [(r.name, r.ok, r.why) for r in results.guest_results(JSON, ktap.guest_lines(LOG))]
        self.assertIn(('guest: guest: two CPUs online', True, ''), got)
        self.assertIn(('guest: instance: removed', False, "'rmdir x' failed"), got)
        self.assertIn(('guest: ftracetest: Unsupported thing', None, 'skipped'), got)
        self.assertIn(('guest: died', False, 'exit status 139'), got)

    def test_real_console_log(self):
        log = fixture('boot-patched-vng.log')
        self.assertEqual(boot.find_splats(log), [])
        self.assertEqual(boot.guest_exit_status(log), 0)
        startup = results.parse_startup_tests(log)
        self.assertGreater(len(startup), 10)
        self.assertTrue(all(r.ok for r in startup), [r.line() for r in startup if not r.ok])
        self.assertTrue(any(r.name == 'startup: Testing dynamic ftrace ops #1' for r in startup))
        # The guest's KTAP, read apart from the kernel's lines, and its failures (none).
        guest = ktap.guest_lines(log)
        self.assertEqual(guest[0], 'KTAP version 1')
        self.assertGreater(sum(1 for line in guest if line.startswith('ok ')), 5)
        self.assertEqual(results.guest_failures(log), [])


class TestKunitJson(unittest.TestCase):
    def test_flatten(self):
        js = json.dumps({'name': 'KUnit Test Group', 'sub_groups': [
            {'name': 'kprobes_test', 'sub_groups': [], 'test_cases': [
                {'name': 'test_kprobe', 'status': 'PASS'},
                {'name': 'test_kretprobe', 'status': 'FAIL'},
                {'name': 'test_stacktrace_on_kretprobe', 'status': 'SKIP'}]},
            {'name': 'fprobe_test', 'sub_groups': [], 'test_cases': [
                {'name': 'test_fprobe', 'status': 'ERROR'}]}], 'test_cases': []})
        got = [(r.name, r.ok) for r in results.kunit_results_from_json(js)]
        self.assertEqual(got, [('kunit: kprobes_test.test_kprobe', True),
                               ('kunit: kprobes_test.test_kretprobe', False),
                               ('kunit: kprobes_test.test_stacktrace_on_kretprobe', None),
                               ('kunit: fprobe_test.test_fprobe', False)])

    def test_empty_is_error(self):
        with self.assertRaisesRegex(WorkbenchError, 'no KUnit test'):
            results.kunit_results_from_json('{"name": "KUnit Test Group", "sub_groups": [],'
                                         ' "test_cases": []}')

    def test_summary(self):
        rs = [results.Result('a', True), results.Result('b', False), results.Result('c', None)]
        self.assertEqual(results.summary_line(rs), '1 passed, 1 failed')
        self.assertEqual([r.line() for r in rs], ['PASS a', 'FAIL b', 'SKIP c'])


if __name__ == '__main__':
    unittest.main()
