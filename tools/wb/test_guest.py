"""Unit tests of the stress's seeded generators (tools/guest/hostile-gen.sh), run by the
busybox that the guest runs them with."""

import os
import shutil
import subprocess
import tempfile
import unittest

from wb import settings

FUNCS = ['quiet_one', 'quiet_two', 'quiet_three', 'quiet_four', 'quiet_five', 'quiet_six']


class HostileGenTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.busybox = shutil.which('busybox') or '/bin/busybox'
        cls.tmp = tempfile.TemporaryDirectory()
        cls.funcs = os.path.join(cls.tmp.name, 'funcs')
        with open(cls.funcs, 'w') as fh:
            fh.write('\n'.join(FUNCS) + '\n')

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def gen(self, fn, seed, n):
        self.assertTrue(os.path.isfile(self.busybox), 'busybox-static is a setup dependency')
        script = (f'. {os.path.join(settings.GUEST, "hostile-gen.sh")}\n'
                  f'{fn} {seed} {n} {self.funcs}\n')
        p = subprocess.run([self.busybox, 'sh', '-c', script], capture_output=True,
                           text=True, check=True)
        return p.stdout.splitlines()

    def test_kprobe_events_replay_by_seed(self):
        a = self.gen('gen_kprobe_events', 7, 300)
        self.assertEqual(len(a), 300)
        self.assertEqual(a, self.gen('gen_kprobe_events', 7, 300))
        self.assertNotEqual(a, self.gen('gen_kprobe_events', 8, 300))
        self.assertEqual(a[:100], self.gen('gen_kprobe_events', 7, 100))

    def test_kprobe_events_cover_every_kind(self):
        lines = self.gen('gen_kprobe_events', 1, 2000)
        self.assertTrue(all(line[:2] in ('a ', 'e ') for line in lines))
        text = '\n'.join(lines)
        for needle in (' nosuch_', '+0xffffffffffffffff', '+4294967296', 'p:hk/dup ',
                       ' %nosuch', ':u99', '$retval:x7', '-:hk/nosuch', 'p:hk/ ',
                       ' %di %si', '\ne r:hk/'):
            self.assertIn(needle, text)
        self.assertTrue(any(f'{f}-' in text for f in FUNCS), 'negative offsets')
        self.assertTrue(any('+1' in line and '+100' not in line for line in lines))
        self.assertTrue(any(len(line) > 80 for line in lines), 'overlong names')

    def test_filter_writes_never_empty_the_filter(self):
        lines = self.gen('gen_filter_writes', 3, 2000)
        self.assertEqual(lines, self.gen('gen_filter_writes', 3, 2000))
        ops = {line.split(' ', 1)[0] for line in lines}
        self.assertEqual(ops, {'>', '>>', 't'})
        for line in lines:
            op, _, rest = line.partition(' ')
            if op == '>':
                self.assertTrue(rest.startswith('quiet_one '), line)
            self.assertNotIn('!quiet_one', rest)
            self.assertNotEqual(rest.strip(), '*')
        self.assertTrue(any(line.startswith('>> !') for line in lines))
        self.assertTrue(any(':mod:nosuch_' in line for line in lines))
        self.assertTrue(any(':traceoff' in line for line in lines))


if __name__ == '__main__':
    unittest.main()
