"""The workbench's layout rules: no module in tools/wb over 550 lines and no function over
70, so that each module keeps one role and each function reads as one step; and no text
file of the repository cites a file outside it."""

import ast
import glob
import os
import subprocess
import unittest

WB = os.path.dirname(os.path.abspath(__file__))
MAX_MODULE_LINES = 550
MAX_FUNCTION_LINES = 70
# Names of files outside the repository that its text must not cite (split so that this
# file does not cite them itself).
OUTSIDE = ('design' + '.md', '../' + 'shared/', 'shared/' + 'seed')


class TestLayout(unittest.TestCase):
    def test_modules_and_functions_are_short(self):
        too_long = []
        for path in sorted(glob.glob(os.path.join(WB, '*.py'))):
            name = os.path.basename(path)
            with open(path) as fh:
                text = fh.read()
            n = len(text.splitlines())
            if n > MAX_MODULE_LINES:
                too_long.append(f'{name}: {n} lines')
            for node in ast.walk(ast.parse(text, name)):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_FUNCTION_LINES:
                        too_long.append(f'{name}:{node.lineno}: {node.name}() has {n} lines')
        self.assertEqual(too_long, [])


    def test_the_repository_names_no_file_outside_it(self):
        # The repository stands alone: its text files cite no document of the team's
        # that a clone does not have (a design note one level up, a shared folder).
        repo = os.path.dirname(os.path.dirname(WB))
        files = subprocess.run(['git', 'ls-files', '--cached', '--others',
                                '--exclude-standard'], cwd=repo, capture_output=True,
                               text=True, check=True).stdout.split()
        bad = []
        for f in files:
            if f.startswith('patches/') or f.endswith(('.png', '.log', '.lock')):
                continue
            try:
                with open(os.path.join(repo, f), encoding='utf-8') as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            bad += [f'{f}: {w}' for w in OUTSIDE if w in text]
        self.assertEqual(bad, [])


if __name__ == '__main__':
    unittest.main()
