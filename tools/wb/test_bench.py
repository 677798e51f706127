"""Unit tests of the bench's guest scripts (tools/guest/), run by busybox as in the guest."""

import os
import shutil
import subprocess
import unittest

from wb import settings


class GuestShellTest(unittest.TestCase):
    """Functions of the guest scripts, run by the busybox that the guest runs them with."""

    def shell_function(self, script, name):
        with open(os.path.join(settings.GUEST, script)) as fh:
            text = fh.read()
        start = text.index(f'\n{name}() {{\n') + 1
        return text[start:text.index('\n}\n', start) + 3]

    def mark_us(self, dmesg, calls):
        """Runs tramp-cost.sh's mark_us under busybox with `dmesg` as the kernel log."""
        busybox = shutil.which('busybox') or '/bin/busybox'
        self.assertTrue(os.path.isfile(busybox), 'busybox-static is a setup dependency')
        script = (f'dmesg() {{ printf "{dmesg}"; }}\n'
                  'err() { echo "ERR $*"; exit 1; }\n'
                  + self.shell_function('tramp-cost.sh', 'mark_us') + calls + '\n')
        return subprocess.run([busybox, 'sh', '-c', script], capture_output=True, text=True)

    def test_mark_us_reads_microseconds_in_decimal(self):
        # busybox awk reads a number with a leading zero as octal: 21.026220 s must give
        # 21026220 us, not 21011408.
        p = self.mark_us('[   21.026220] wb-mark a-1\\n[    3.000100] wb-mark b\\n',
                         'mark_us a-1; mark_us b; mark_us c')
        self.assertEqual(p.stdout.split('\n')[:3], ['21026220', '3000100',
                                                     'ERR no printk timestamp for mark c '
                                                     '(CONFIG_PRINTK_TIME?)'])
        self.assertEqual(p.returncode, 1)

    def test_mark_us_past_2147_seconds(self):
        # busybox awk's printf %d is 32-bit: 8379.479343 s gave -2147483648, and every
        # time after 2147 s of guest clock (a bench with 10000 ops) read as 0.
        p = self.mark_us('[ 8379.479343] wb-mark d\\n[ 5752.913045] wb-mark e\\n',
                         'mark_us d; mark_us e; echo $(($(mark_us d) - $(mark_us e)))')
        self.assertEqual(p.stdout.split('\n')[:3], ['8379479343', '5752913045', '2626566298'])

if __name__ == '__main__':
    unittest.main()
