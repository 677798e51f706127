"""Unit tests of boot.py: console-log analysis (splats, the guest's exit status)."""

import unittest

from wb import boot


class TestConsoleLog(unittest.TestCase):
    def test_icount_guests_start_from_a_fixed_clock(self):
        argv = boot.qemu_argv('qemu', 'bz', 'initrd', 'execslot', icount=True)
        self.assertIn('shift=0,sleep=off', argv)
        self.assertEqual(argv[argv.index('-rtc') + 1], 'base=2026-01-01T00:00:00,clock=vm')
        self.assertTrue(argv[-1].endswith('tsc=reliable'))
        self.assertNotIn('-rtc', boot.qemu_argv('qemu', 'bz', 'initrd', 'execslot'))

    def test_splats(self):
        log = ('[    1.0] ok line\n'
               '[    2.5] ------------[ cut here ]------------\n'
               '[    2.5] WARNING: CPU: 0 PID: 1 at kernel/trace/ftrace.c:2000 ftrace_bug+0x1/0x2\n'
               '[    3.0] BUG: kernel NULL pointer dereference, address: 0000000000000001\n'
               '[    3.1] Oops: 0010 [#1] PREEMPT SMP\n'
               '[    3.2] Kernel panic - not syncing: Fatal exception\n')
        kinds = [k for k, _ in boot.find_splats(log)]
        self.assertEqual(kinds, ['warning', 'warning', 'bug', 'oops', 'panic'])

    def test_lockdep_and_clean(self):
        self.assertEqual(boot.find_splats('[ 5.0] Testing tracer function: PASSED\n'), [])
        kinds = [k for k, _ in boot.find_splats(
            '[ 9.1] WARNING: possible recursive locking detected\n'
            '[ 9.2] INFO: task kworker/0:1:12 blocked for more than 120 seconds.\n'
            '[ 9.3] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:\n')]
        self.assertEqual(kinds, ['warning', 'hung task', 'rcu stall'])

    def test_guest_exit(self):
        self.assertIsNone(boot.guest_exit_status('WB-GUEST-START\n[ 1.0] x\n'))
        self.assertEqual(boot.guest_exit_status('WB-GUEST-START\nWB-GUEST-EXIT 0\r\n'), 0)
        self.assertEqual(boot.guest_exit_status('WB-GUEST-EXIT 3\n'), 3)


if __name__ == '__main__':
    unittest.main()
