"""Unit tests of cpio.py: the newc writer, read back by cpio(1)."""

import os
import subprocess
import tempfile
import unittest

from wb.cpio import Cpio


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


if __name__ == '__main__':
    unittest.main()
