"""Unit tests of patches.py: parsing and writing patches/series."""

import unittest

from wb import patches
from wb.util import WorkbenchError


class TestSeries(unittest.TestCase):
    FILES = {'series', '0001-x86-ftrace-fix.patch', '0002-rust-add.patch'}

    def test_order_and_version(self):
        s = patches.parse_series('# linux-source-7.3 7.3.4-1~bpo13+1\n\n0002-rust-add.patch\n'
                              '0001-x86-ftrace-fix.patch\n', self.FILES)
        self.assertEqual(s.patches, ['0002-rust-add.patch', '0001-x86-ftrace-fix.patch'])
        self.assertEqual(s.package_version, '7.3.4-1~bpo13+1')

    def test_missing_file(self):
        with self.assertRaisesRegex(WorkbenchError, r'series:2: 0003-gone.patch is listed but'):
            patches.parse_series('0001-x86-ftrace-fix.patch\n0003-gone.patch\n0002-rust-add.patch\n',
                              self.FILES)

    def test_unlisted_file(self):
        with self.assertRaisesRegex(WorkbenchError, r'not in patches/series: 0002-rust-add.patch'):
            patches.parse_series('0001-x86-ftrace-fix.patch\n', self.FILES)

    def test_cover_letter_need_not_be_listed(self):
        s = patches.parse_series('0001-x86-ftrace-fix.patch\n0002-rust-add.patch\n',
                              self.FILES | {'0000-cover-letter.patch'})
        self.assertEqual(len(s.patches), 2)

    def test_duplicate_and_malformed(self):
        with self.assertRaisesRegex(WorkbenchError, 'listed twice'):
            patches.parse_series('0001-x86-ftrace-fix.patch\n0001-x86-ftrace-fix.patch\n', self.FILES)
        with self.assertRaisesRegex(WorkbenchError, 'expected one file name'):
            patches.parse_series('0001-x86-ftrace-fix.patch -p1\n', self.FILES)
        with self.assertRaisesRegex(WorkbenchError, 'is not a NNNN-name.patch'):
            patches.parse_series('fix.diff\n', self.FILES | {'fix.diff'})

    def test_format_round_trip(self):
        names = ['0001-x86-ftrace-fix.patch', '0002-rust-add.patch']
        s = patches.parse_series(patches.format_series(names, '7.3.5-1'), self.FILES)
        self.assertEqual((s.patches, s.package_version), (names, '7.3.5-1'))


if __name__ == '__main__':
    unittest.main()
