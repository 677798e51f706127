"""Unit tests of `stress`: the split over boots and the record made from console logs."""

import contextlib
import dataclasses
import io
import json
import os
import subprocess
import tempfile
import unittest
from unittest import mock

from wb import stress
from wb.results import Result
from wb.util import WorkbenchError

LOG = '''[    1.0] Linux version 7.3.4
WB-GUEST-START
KTAP version 1
ok 1 kmemleak present
# wb-figure stress worker=inst1 errors=0 cycles=500
# wb-figure stress worker=ops errors=1 cycles=50
# wb-figure stress worker=lp errors=0 cycles=10
# wb-figure stress workers_seconds=812.5 seed=3 hostile=2000
    KTAP version 1
    # Subtest: hostile
    # wb-figure hostile seed=3 n=2000 kprobe_sha=0123456789ab filter_sha=ba9876543210
[   90.1] # wb-figure stress worker=kp1 errors=9 cycles=9
    ok 1 hostile: no instance left
ok 2 hostile
# wb-figure stress accounting_base=4/0/2 accounting_end=4/0/2
[  700.2] Oops: int3: 0000 [#1] SMP
[  700.2] CPU: 0 UID: 0 PID: 0 Comm: swapper/0 Not tainted 7.3.4+ #1
[  700.2] RIP: 0010:ktime_get_update_offsets_now+0x5/0x110
[  700.2] Call Trace:
[  700.2]  <IRQ>
[  700.2]  hrtimer_interrupt+0x7a/0x210
[  700.2] ---[ end trace 0000000000000000 ]---
WB-GUEST-EXIT 0
'''


class StressTest(unittest.TestCase):
    def test_boot_cycles_split_evenly(self):
        self.assertEqual(stress.boot_cycles(10000, 4), [2500] * 4)
        self.assertEqual(stress.boot_cycles(10, 3), [4, 3, 3])
        self.assertEqual(sum(stress.boot_cycles(10001, 7)), 10001)
        with self.assertRaises(WorkbenchError):
            stress.boot_cycles(2, 3)
        with self.assertRaises(WorkbenchError):
            stress.boot_cycles(10, 0)

    def boots(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, 'boot.log')
            with open(log, 'w') as fh:
                fh.write(LOG)
            res = [Result('a', True), Result('b', False, 'why'), Result('c', None)]
            meta = dict(date='2026-12-02 05:00', commit='abc1234', kernel='patched 7.3.4+',
                        hostile=2000)
            b1 = stress._boot_record('patched-stress-1', 500, 3, 900.0, res, log, **meta)
            b2 = stress._boot_record('patched-stress-2', 500, 4, 950.0, res[:1], log, **meta)
        return [b1, b2]

    def test_figures_from_the_log_only_the_guest_lines(self):
        b1 = self.boots()[0]
        self.assertEqual((b1.passed, b1.failed), (1, 1))
        self.assertEqual(b1.failures, ['FAIL b: why'])
        # kp1's line is a kernel printk line (a timestamp): not the guest's figure.
        self.assertEqual(stress.worker_totals([b1])['kp1'], (0, 0))
        self.assertEqual(stress.worker_totals(self.boots())['inst1'], (1000, 0))
        self.assertEqual(stress.worker_totals(self.boots())['ops'], (100, 2))
        self.assertEqual(stress.worker_totals(self.boots())['hotplug'], (0, 0))

    def test_record_text(self):
        text = stress.record_text(self.boots(), '0123abcd')
        self.assertIn('2 boot(s);\n# series digest 0123abcd', text)
        self.assertIn('kernel: patched 7.3.4+, the stress config', text)
        self.assertIn('wall time: 1850 s (0.5 h)', text)
        self.assertIn('  inst1       1000 cycles  0 errors', text)
        self.assertIn('  lp            20 cycles  0 errors', text)
        self.assertIn('  hostile     4000 kprobe_events writes, 1000 set_ftrace_filter writes, '
                      '800 mkdir/rmdir race steps', text)
        self.assertIn('  2026-12-02 05:00 patched-stress-1 (commit abc1234): 500 cycles, seed 3, '
                      '900 s (workers 812.5 s); 1 passed, 1 failed\n'
                      '    hostile sequences kprobe 0123456789ab filter ba9876543210; '
                      'accounting (slots/pending/trampolines) 4/0/2 -> 4/0/2\n'
                      '    FAIL b: why\n'
                      '    splat: Oops: int3: 0000 [#1] SMP; CPU: 0 UID: 0 PID: 0 Comm: '
                      'swapper/0; RIP: 0010:ktime_get_update_offsets_now+0x5/0x110; '
                      'Call Trace: hrtimer_interrupt+0x7a/0x210\n', text)
        self.assertTrue(text.endswith('\n2 passed, 1 failed\n'))

    def test_record_keeps_the_boots_of_one_series(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'stress.json')
            self.assertEqual(stress.load_record(path, 'aa'), [])
            boots = self.boots()
            stress.save_record(path, 'aa', boots)
            back = stress.load_record(path, 'aa')
            self.assertEqual(back, boots)
            stress.save_record(path, 'aa', back + boots[:1])
            self.assertEqual(len(stress.load_record(path, 'aa')), 3)
            # A record written before boots kept their splats still loads.
            with open(path) as fh:
                data = json.load(fh)
            for b in data['boots']:
                del b['splats']
            with open(path, 'w') as fh:
                json.dump(data, fh)
            self.assertEqual([b.splats for b in stress.load_record(path, 'aa')], [[]] * 3)
            # Another series: its boots do not count.
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(stress.load_record(path, 'bb'), [])

    def test_record_grows_boot_by_boot_and_refuses_used_seeds(self):
        b1, b2 = self.boots()
        with tempfile.TemporaryDirectory() as d:
            js, txt = os.path.join(d, 'stress.json'), os.path.join(d, 'stress.txt')
            with contextlib.redirect_stderr(io.StringIO()):
                stress.add_to_record(js, txt, 'aa', b1)
                self.assertEqual(stress.load_record(js, 'aa'), [b1])
                with open(txt) as fh:
                    self.assertIn('1 boot(s)', fh.read())
                stress.add_to_record(js, txt, 'aa', b2)
            self.assertEqual(stress.load_record(js, 'aa'), [b1, b2])
            with open(txt) as fh:
                self.assertIn('2 boot(s)', fh.read())
        # b1 and b2 used seeds 3 and 4.
        stress.check_seeds([b1, b2], 5, 3)
        stress.check_seeds([b1, b2], 1, 2)
        with self.assertRaisesRegex(WorkbenchError, r'seed\(s\) 4 already .* --seed 5'):
            stress.check_seeds([b1, b2], 4, 2)
        with self.assertRaisesRegex(WorkbenchError, r'seed\(s\) 3, 4 already'):
            stress.check_seeds([b1, b2], 1, 10)

    def test_a_cut_run_keeps_its_finished_boots(self):
        """The second boot fails to boot: the first is in the record all the same."""
        b1 = self.boots()[0]
        with tempfile.TemporaryDirectory() as d:
            js, txt = os.path.join(d, 'stress.json'), os.path.join(d, 'stress.txt')
            calls = []

            def fake_results(P, cycles, timeout, seed, hostile, vanilla, label):
                calls.append(seed)
                if len(calls) == 2:
                    raise WorkbenchError('boot timed out')
                return [Result('a', True)], 'log'

            P = mock.Mock()
            P.build_dir.return_value = d
            os.makedirs(os.path.join(d, 'include', 'config'))
            with open(os.path.join(d, 'include', 'config', 'kernel.release'), 'w') as fh:
                fh.write('7.3.4+\n')
            opts = stress.StressOptions(cycles=20, boots=2, seed=7, record=True)
            with mock.patch.multiple(stress, RECORD_JSON=js, RECORD=txt,
                                     series_digest=lambda: 'aa', require_source=mock.Mock(),
                                     stress_results=fake_results,
                                     _boot_record=lambda *a, **k: b1), \
                    contextlib.redirect_stderr(io.StringIO()), \
                    contextlib.redirect_stdout(io.StringIO()), \
                    self.assertRaisesRegex(WorkbenchError, 'timed out'):
                stress.stress_command(P, opts)
            self.assertEqual(calls, [7, 8])
            self.assertEqual(stress.load_record(js, 'aa'), [b1])

    def test_each_boot_records_the_commit_it_started_at(self):
        """The commit is read as each boot starts: scripts changed during a run show."""
        b1 = self.boots()[0]
        commits = iter(['c1', 'c2+'])
        got = []
        with tempfile.TemporaryDirectory() as d:
            P = mock.Mock(logs=d)
            P.build_dir.return_value = d
            os.makedirs(os.path.join(d, 'include', 'config'))
            with open(os.path.join(d, 'include', 'config', 'kernel.release'), 'w') as fh:
                fh.write('7.3.4+\n')
            with mock.patch.multiple(stress, series_digest=lambda: 'aa',
                                     require_source=mock.Mock(),
                                     workbench_commit=lambda: next(commits),
                                     stress_results=lambda *a: ([Result('a', True)], 'log'),
                                     _boot_record=lambda *a, **k: got.append(k['commit'])
                                     or b1), \
                    contextlib.redirect_stderr(io.StringIO()), \
                    contextlib.redirect_stdout(io.StringIO()):
                stress.stress_command(P, stress.StressOptions(cycles=4, boots=2))
        self.assertEqual(got, ['c1', 'c2+'])

    def test_workbench_commit_marks_changed_tools(self):
        with tempfile.TemporaryDirectory() as d:
            git = ['git', '-C', d, '-c', 'user.name=t', '-c', 'user.email=t@t']
            os.makedirs(os.path.join(d, 'tools'))
            with open(os.path.join(d, 'tools', 'x.sh'), 'w') as fh:
                fh.write('a\n')
            with open(os.path.join(d, 'README'), 'w') as fh:
                fh.write('a\n')
            for argv in (['init', '-q'], ['add', '.'], ['commit', '-qm', 'x']):
                subprocess.run(git + argv, check=True)
            head = subprocess.run(git + ['rev-parse', '--short', 'HEAD'], check=True,
                                  capture_output=True, text=True).stdout.strip()
            with mock.patch.object(stress, 'REPO', d), \
                    contextlib.redirect_stderr(io.StringIO()):
                self.assertEqual(stress.workbench_commit(), head)
                with open(os.path.join(d, 'README'), 'a') as fh:
                    fh.write('b\n')
                self.assertEqual(stress.workbench_commit(), head)
                with open(os.path.join(d, 'tools', 'x.sh'), 'a') as fh:
                    fh.write('b\n')
                self.assertEqual(stress.workbench_commit(), head + '+')

    def test_vanilla_record_is_apart_and_grows(self):
        """--vanilla --record adds to results/stress-vanilla.json (the record of the base's
        package version) and writes stress-vanilla.txt from it, not the series' record."""
        b1, b2 = self.boots()
        with tempfile.TemporaryDirectory() as d:
            js, txt = os.path.join(d, 'stress.json'), os.path.join(d, 'stress.txt')
            vjs = os.path.join(d, 'stress-vanilla.json')
            van = os.path.join(d, 'stress-vanilla.txt')
            logs = os.path.join(d, 'logs')
            os.makedirs(logs)
            P = mock.Mock(logs=logs, linux=d)
            P.build_dir.return_value = d
            os.makedirs(os.path.join(d, 'include', 'config'))
            with open(os.path.join(d, 'include', 'config', 'kernel.release'), 'w') as fh:
                fh.write('7.3.4+\n')
            made = iter([b1, b2])

            def run(opts):
                with mock.patch.multiple(stress, RECORD_JSON=js, RECORD=txt,
                                         RECORD_VANILLA=van, RECORD_VANILLA_JSON=vjs,
                                         series_digest=lambda: 'aa',
                                         base_version=lambda linux: '7.3.4-1~bpo12+1',
                                         require_source=mock.Mock(),
                                         stress_results=lambda *a: ([Result('a', True)], 'log'),
                                         _boot_record=lambda *a, **k: next(made)), \
                        contextlib.redirect_stderr(io.StringIO()), \
                        contextlib.redirect_stdout(io.StringIO()):
                    stress.stress_command(P, opts)

            run(stress.StressOptions(cycles=10, seed=3, vanilla=True, record=True))
            run(stress.StressOptions(cycles=10, seed=4, vanilla=True, record=True))
            self.assertFalse(os.path.exists(js) or os.path.exists(txt))
            self.assertEqual(stress.load_record(vjs, 'base 7.3.4-1~bpo12+1'), [b1, b2])
            with open(van) as fh:
                text = fh.read()
            self.assertIn('2 boot(s);\n# the base tree (7.3.4-1~bpo12+1), without the series.',
                          text)
            with open(os.path.join(logs, 'stress-vanilla.txt')) as fh:
                self.assertIn('1 boot(s);', fh.read())
            # Seed 4 is in the base's record now.
            with self.assertRaisesRegex(WorkbenchError, r'seed\(s\) 4 already'):
                run(stress.StressOptions(cycles=10, seed=4, vanilla=True, record=True))

    def test_vanilla_record_needs_a_base(self):
        P = mock.Mock(linux='/nonexistent')
        with mock.patch.object(stress, 'base_version', lambda linux: None), \
                self.assertRaisesRegex(WorkbenchError, 'tools/workbench source'):
            stress.base_key(P)

    def test_digest_follows_the_code_not_the_changelog(self):
        patch = ('From 0 Mon Sep 17 00:00:00 2001\nSubject: [PATCH 1/1] a: Do {}\n\nWhy.\n---\n'
                 ' f | 1 +\n\ndiff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -0,0 +1 @@\n+{}\n')
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, '0001-a.patch')

            def digest(subject, line):
                with open(path, 'w') as fh:
                    fh.write(patch.format(subject, line))
                with mock.patch.object(stress, 'PATCHES', d), \
                        mock.patch.object(stress, 'read_series',
                                          lambda: mock.Mock(patches=['0001-a.patch'])):
                    return stress.series_digest()
            one = digest('this', 'code')
            self.assertEqual(digest('that, reworded', 'code'), one)
            self.assertNotEqual(digest('this', 'other code'), one)
        self.assertEqual(stress.patch_code('no diff at all'), '')

    def test_options_match_the_command_line(self):
        from wb import cli
        a = cli.build_parser().parse_args(['stress', '--cycles', '10000', '--boots', '5',
                                           '--record'])
        opts = stress.StressOptions(**{f.name: getattr(a, f.name)
                                       for f in dataclasses.fields(stress.StressOptions)})
        self.assertEqual((opts.cycles, opts.boots, opts.seed, opts.record, opts.vanilla),
                         (10000, 5, 1, True, False))


if __name__ == '__main__':
    unittest.main()
