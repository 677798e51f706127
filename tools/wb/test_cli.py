"""Unit tests of cli.py: the command line."""

import contextlib
import io
import os
import tempfile
import unittest
from unittest import mock

from wb import cli


class TestCli(unittest.TestCase):
    def run_main(self, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                rc = cli.main(argv)
            except SystemExit as e:
                rc = e.code
        return rc, err.getvalue()

    def test_unknown_command_and_option(self):
        self.assertEqual(self.run_main(['frobnicate'])[0], 2)
        self.assertEqual(self.run_main(['build', '--config', 'nope'])[0], 2)
        self.assertEqual(self.run_main([])[0], 2)

    def test_help_lists_every_command(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            with self.assertRaises(SystemExit):
                cli.main(['--help'])
        for c in ('setup', 'source', 'apply', 'build', 'boot', 'test', 'export', 'check', 'demo'):
            self.assertIn(c, out.getvalue())

    def test_missing_source_is_clear_error(self):
        with tempfile.TemporaryDirectory() as d, mock.patch.dict(os.environ, {'KWB_CACHE': d}):
            for argv in (['apply'], ['build'], ['boot'], ['check'], ['export']):
                rc, err = self.run_main(argv)
                self.assertEqual(rc, 1, argv)
                self.assertIn('no base tree', err)


if __name__ == '__main__':
    unittest.main()
