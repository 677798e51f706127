"""Tests of source.py: the work tree and its worktrees."""

import os
import shutil
import subprocess
import tempfile
import unittest

from wb import source
from wb.settings import Paths


def sh(*argv, cwd):
    subprocess.run(argv, cwd=cwd, check=True, capture_output=True,
                   env={**os.environ, 'GIT_AUTHOR_NAME': 't', 'GIT_AUTHOR_EMAIL': 't@t',
                        'GIT_COMMITTER_NAME': 't', 'GIT_COMMITTER_EMAIL': 't@t'})


class TestWorktrees(unittest.TestCase):
    def test_a_moved_cache_gets_its_worktrees_back(self):
        # The worktrees' links are absolute paths: after the cache directory is moved,
        # git no longer finds them. ensure_worktrees() must repair or remake them.
        with tempfile.TemporaryDirectory() as tmp:
            old = Paths.at(os.path.join(tmp, 'old'))
            os.makedirs(old.linux)
            sh('git', 'init', '-q', cwd=old.linux)
            with open(os.path.join(old.linux, 'f'), 'w') as fh:
                fh.write('base\n')
            sh('git', 'add', 'f', cwd=old.linux)
            sh('git', 'commit', '-qm', 'base', cwd=old.linux)
            sh('git', 'branch', 'base', cwd=old.linux)
            source.ensure_worktrees(old)
            new = Paths.at(os.path.join(tmp, 'new'))
            shutil.move(old.cache, new.cache)
            source.ensure_worktrees(new)
            for path in (new.vanilla, new.scratch):
                out = subprocess.run(['git', 'rev-parse', 'HEAD'], cwd=path,
                                     capture_output=True, text=True)
                self.assertEqual(out.returncode, 0, out.stderr)
            with open(os.path.join(new.vanilla, 'f')) as fh:
                self.assertEqual(fh.read(), 'base\n')


if __name__ == '__main__':
    unittest.main()
