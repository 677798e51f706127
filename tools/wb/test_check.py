"""Unit tests of check.py: MAINTAINERS sections and Fixes: tags."""

import unittest

from wb import check


class TestMaintainers(unittest.TestCase):
    def test_sections(self):
        out = ('MEMORY MANAGEMENT - EXECMEM\nM:\tMike Rapoport <rppt@kernel.org>\n'
               'F:\tmm/execslot/\n\nTHE REST\nM:\tLinus Torvalds <torvalds@linux-foundation.org>\n')
        self.assertEqual(check.maintainer_sections(out), ['MEMORY MANAGEMENT - EXECMEM'])
        self.assertEqual(check.maintainer_sections('THE REST\nL:\tlinux-kernel@vger.kernel.org\n'), [])


class TestFixes(unittest.TestCase):
    PATCH = ('Subject: [PATCH 01/13] x86/ftrace: Do not\n\nBody.\n\n'
             'Fixes: 0c3772a8db1f ("x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP")\n'
             'Cc: stable@vger.kernel.org\n---\n diff\nFixes: 111111111111 ("not a tag")\n')

    def test_parse(self):
        self.assertEqual(check.parse_fixes(self.PATCH),
                         [('0c3772a8db1f', 'x86/ftrace: Implement DYNAMIC_FTRACE_WITH_JMP')])

    def test_check(self):
        base = {'arch/x86/kernel/ftrace.c': '\tif (ftrace_is_jmp(addr)) {\n'}.get
        self.assertIsNone(check.check_fixes(check.parse_fixes(self.PATCH)[0], base))
        # v1's tag: the generic flag's commit, which did not add the bit-0 read.
        self.assertIn('not a commit', check.check_fixes(
            ('25e4e3565d45', 'ftrace: Introduce FTRACE_OPS_FL_JMP'), base))
        self.assertIn('is "x86/ftrace', check.check_fixes(('0c3772a8db1f', 'x'), base))
        self.assertIn('lacks', check.check_fixes(
            check.parse_fixes(self.PATCH)[0], {'arch/x86/kernel/ftrace.c': ''}.get))


if __name__ == '__main__':
    unittest.main()
