"""Unit tests of util.py: running commands."""

import unittest

from wb import util
from wb.util import WorkbenchError


class TestRun(unittest.TestCase):
    def test_missing_tool_is_clear_error(self):
        with self.assertRaisesRegex(WorkbenchError, 'no-such-tool-xyz: not found'):
            util.run(['no-such-tool-xyz'])

    def test_failed_command_names_itself(self):
        with self.assertRaisesRegex(WorkbenchError, r'false failed \(exit 1\)'):
            util.run(['false'])


if __name__ == '__main__':
    unittest.main()
