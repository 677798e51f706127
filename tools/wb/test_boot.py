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

    def test_splat_excerpts_keep_where_and_how(self):
        """A BUG and its Oops are one splat; a warning is another; "? " frames are
        guesses and left out; the console's timestamps go."""
        log = (
            '[   1.0] booting\n'
            '[  50.1] BUG: kernel NULL pointer dereference, address: 0000000000000008\n'
            '[  50.1] Oops: Oops: 0000 [#1] SMP\n'
            '[  50.1] CPU: 1 UID: 0 PID: 77 Comm: sh Not tainted 7.3.4+ #1 PREEMPT(voluntary)\n'
            '[  50.1] Hardware name: QEMU Standard PC (i440FX + PIIX, 1996)\n'
            '[  50.1] RIP: 0010:ftrace_ops_test+0x12/0x80\n'
            '[  50.1] Code: 90 90 <48> 8b 07\n'
            '[  50.1] Call Trace:\n'
            '[  50.1]  <TASK>\n'
            '[  50.1]  ? die+0x36/0x90\n'
            '[  50.1]  __ftrace_hash_rec_update+0x1f0/0x400\n'
            '[  50.1]  ftrace_startup+0x70/0x180 [ftrace_ops]\n'
            '[  50.1]  register_ftrace_function+0x40/0x90\n'
            '[  50.1]  </TASK>\n'
            '[  50.2] ---[ end trace 0000000000000000 ]---\n'
            '[  60.0] ------------[ cut here ]------------\n'
            '[  60.0] WARNING: CPU: 0 PID: 1 at kernel/trace/ftrace.c:2000 ftrace_bug+0x1/0x2\n'
            '[  60.0] CPU: 0 UID: 0 PID: 1 Comm: init Tainted: G      D 7.3.4+ #1\n'
            '[  60.0] RIP: 0010:ftrace_bug+0x1/0x2\n'
            '[  60.0] Call Trace:\n'
            '[  60.0]  ftrace_replace_code+0x99/0x100\n'
            '[  60.1] Kernel panic - not syncing: Fatal exception\n')
        self.assertEqual(boot.splat_excerpts(log), [
            'BUG: kernel NULL pointer dereference, address: 0000000000000008; '
            'CPU: 1 UID: 0 PID: 77 Comm: sh; RIP: 0010:ftrace_ops_test+0x12/0x80; '
            'Call Trace: __ftrace_hash_rec_update+0x1f0/0x400 < ftrace_startup+0x70/0x180 < '
            'register_ftrace_function+0x40/0x90',
            'WARNING: CPU: 0 PID: 1 at kernel/trace/ftrace.c:2000 ftrace_bug+0x1/0x2; '
            'CPU: 0 UID: 0 PID: 1 Comm: init; RIP: 0010:ftrace_bug+0x1/0x2; '
            'Call Trace: ftrace_replace_code+0x99/0x100'])
        self.assertEqual(len(boot.splat_excerpts(log, most=1)), 1)
        self.assertEqual(boot.splat_excerpts('[ 1.0] kmemleak: 3 new suspected memory '
                                             'leaks\n'), [])

    def test_splats_without_rip_end_at_the_next(self):
        """Lockdep's warning and a sleeping-in-atomic BUG print no RIP: the next splat is
        one of its own; lockdep's dependency chain is not its call trace; a guest line
        that mentions WARNING is not a splat."""
        log = (
            '[ 10.0] WARNING: possible circular locking dependency detected\n'
            '[ 10.0] -> #1 (text_mutex){+.+.}-{4:4}:\n'
            '[ 10.0]        __mutex_lock+0x9b/0xc00\n'
            '[ 10.0]        ftrace_arch_code_modify_prepare+0x1d/0x30\n'
            '[ 10.0] stack backtrace:\n'
            '[ 10.0] CPU: 1 UID: 0 PID: 90 Comm: sh Not tainted 7.3.4+ #1\n'
            '[ 10.0] Call Trace:\n'
            '[ 10.0]  <TASK>\n'
            '[ 10.0]  dump_stack_lvl+0x5d/0x80\n'
            '[ 10.0]  check_noncircular+0x121/0x140\n'
            '[ 10.0]  </TASK>\n'
            '# hostile: WARNING: nothing to see\n'
            '[ 11.0] BUG: sleeping function called from invalid context at mm/slub.c:4100\n'
            '[ 11.0] CPU: 0 UID: 0 PID: 91 Comm: sh Not tainted 7.3.4+ #1\n'
            '[ 11.0] Call Trace:\n'
            '[ 11.0]  __might_resched+0x150/0x200\n'
            '[ 12.0] BUG: kernel NULL pointer dereference, address: 0000000000000000\n'
            '[ 12.0] #PF: supervisor read access in kernel mode\n'
            '[ 12.0] Oops: Oops: 0000 [#1] SMP\n'
            '[ 12.0] CPU: 0 UID: 0 PID: 91 Comm: sh Not tainted 7.3.4+ #1\n'
            '[ 12.0] RIP: 0010:execslot_free+0x20/0x90\n'
            '[ 12.0] Call Trace:\n'
            '[ 12.0]  free_trampoline+0x10/0x20 [wb_mod 0123abcd]\n')
        self.assertEqual(boot.splat_excerpts(log, most=5), [
            'WARNING: possible circular locking dependency detected; '
            'CPU: 1 UID: 0 PID: 90 Comm: sh; '
            'Call Trace: dump_stack_lvl+0x5d/0x80 < check_noncircular+0x121/0x140',
            'BUG: sleeping function called from invalid context at mm/slub.c:4100; '
            'CPU: 0 UID: 0 PID: 91 Comm: sh; Call Trace: __might_resched+0x150/0x200',
            'BUG: kernel NULL pointer dereference, address: 0000000000000000; '
            'CPU: 0 UID: 0 PID: 91 Comm: sh; RIP: 0010:execslot_free+0x20/0x90; '
            'Call Trace: free_trampoline+0x10/0x20'])

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
