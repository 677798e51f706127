"""Tests of ktap.py: the guest's KTAP and figures, as tools/guest/lib.sh prints them."""

import unittest

from . import ktap

# A console log: kernel printk lines among the guest's, a subtest of our own (kprobe
# stress) and one of ftracetest -K with the "# Subtest:" line its wrapper adds.
LOG = '''[    1.000000] Run /init as init process
WB-GUEST-START
KTAP version 1
# 7.3.4+ console=ttyS0
ok 1 guest: two CPUs online
[   2.000000] some printk line
# instance: removed: 'rmdir x' failed
not ok 2 instance: removed
    TAP version 13
    # Subtest: ftracetest
    1..2
    ok 1 Basic trace file check
    ok 2 Unsupported thing # SKIP
ok 3 ftracetest
    KTAP version 1
    # Subtest: kprobe stress
    # candidates=100
    ok 1 round 1: 5 kprobes registered
    # round 1: slots back to zero: 3 slots left after 20 s
    not ok 2 round 1: slots back to zero
    # wb-figure kp tag=x round=1 n=5 kprobe_pages=2
    # wb-figure kallsyms tag=x round=1 cs=12
    # wb-figure kp tag=x round=2 n=5 kprobe_pages=3
# kprobe stress: exit status 1
not ok 4 kprobe stress
    KTAP version 1
    # Subtest: died
    ok 1 first check
# died: exit status 139
not ok 5 died
ok 6 dmesg: no splat
WB-GUEST-EXIT 1
# wb-figure kp tag=after-exit
'''

# What the base tree's kunit.py parse --json made of LOG's guest lines (trimmed to the
# fields that ktap.py reads; "died" added by hand in the same shape).
JSON = '''{"name": "KUnit Test Group", "sub_groups": [
 {"name": "ftracetest", "sub_groups": [], "test_cases": [
  {"name": "Basic trace file check", "status": "PASS"},
  {"name": "Unsupported thing", "status": "SKIP"}]},
 {"name": "kprobe stress", "sub_groups": [], "test_cases": [
  {"name": "round 1: 5 kprobes registered", "status": "PASS"},
  {"name": "round 1: slots back to zero", "status": "FAIL"}]},
 {"name": "died", "sub_groups": [], "test_cases": [
  {"name": "first check", "status": "PASS"}]}],
 "test_cases": [
  {"name": "guest: two CPUs online", "status": "PASS"},
  {"name": "instance: removed", "status": "FAIL"},
  {"name": "dmesg: no splat", "status": "PASS"}]}'''


class KtapTest(unittest.TestCase):
    def test_guest_lines_drop_printk_and_what_is_outside_the_markers(self):
        lines = ktap.guest_lines(LOG)
        self.assertEqual(lines[0], 'KTAP version 1')
        self.assertNotIn('[   2.000000] some printk line', lines)
        self.assertEqual(lines[-1], 'ok 6 dmesg: no splat')

    def test_failures_at_every_depth_with_their_reasons(self):
        self.assertEqual(ktap.failures(ktap.guest_lines(LOG)), {
            'instance: removed': "'rmdir x' failed",
            'kprobe stress: round 1: slots back to zero': '3 slots left after 20 s',
            'kprobe stress': 'exit status 1',
            'died': 'exit status 139',
        })

    def test_results_add_a_subtest_that_failed_with_passing_cases(self):
        res = ktap.results(JSON, ktap.guest_lines(LOG))
        self.assertIn(('guest: two CPUs online', 'PASS', ''), res)
        self.assertIn(('instance: removed', 'FAIL', "'rmdir x' failed"), res)
        self.assertIn(('ftracetest: Unsupported thing', 'SKIP', ''), res)
        self.assertIn(('kprobe stress: round 1: slots back to zero', 'FAIL',
                       '3 slots left after 20 s'), res)
        # Its cases passed, but the script died: kunit.py's JSON has no entry for that.
        self.assertIn(('died', 'FAIL', 'exit status 139'), res)
        # kprobe stress has a failing case already: no second entry for the subtest.
        self.assertNotIn(('kprobe stress', 'FAIL', 'exit status 1'), res)
        self.assertEqual(len(res), 9)

    def test_figures_of_one_kind_in_order_inside_the_markers(self):
        self.assertEqual(ktap.figures(LOG, 'kp'), [
            {'tag': 'x', 'round': '1', 'n': '5', 'kprobe_pages': '2'},
            {'tag': 'x', 'round': '2', 'n': '5', 'kprobe_pages': '3'},
        ])
        self.assertEqual(ktap.figures(LOG, 'kallsyms'), [{'tag': 'x', 'round': '1', 'cs': '12'}])
        self.assertEqual(ktap.figures(LOG, 'mem'), [])


if __name__ == '__main__':
    unittest.main()
