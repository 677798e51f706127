"""Unit tests of series.py: recipients from get_maintainer.pl."""

import unittest

from wb import series
from wb.util import WorkbenchError


class TestMaintainers(unittest.TestCase):
    def test_extra_cc(self):
        out = ('Mike Rapoport <rppt@kernel.org> (maintainer:MEMORY MANAGEMENT - EXECMEM)\n'
               'Peter Zijlstra <peterz@infradead.org> (reviewer:X86)\n')
        to, cc = series.parse_get_maintainer(out, series.EXTRA_CC)
        self.assertEqual(to, ['Mike Rapoport <rppt@kernel.org>'])
        self.assertEqual(cc.count('Peter Zijlstra <peterz@infradead.org>'), 1)
        self.assertIn('Josh Poimboeuf <jpoimboe@kernel.org>', cc)
        self.assertIn('Adrian Hunter <adrian.hunter@intel.com>', cc)


class SendTest(unittest.TestCase):
    def test_get_maintainer(self):
        text = ('Steven Rostedt <rostedt@goodmis.org> (maintainer:TRACING)\n'
                'Mark Rutland <mark.rutland@arm.com> (reviewer:FUNCTION HOOKS (FTRACE))\n'
                'x86@kernel.org (maintainer:X86 ARCHITECTURE (32-BIT AND 64-BIT))\n'
                'linux-kernel@vger.kernel.org (open list)\n'
                'Steven Rostedt <rostedt@goodmis.org> (maintainer:FUNCTION HOOKS (FTRACE))\n'
                'fatal: ambiguous argument\n')
        to, cc = series.parse_get_maintainer(text)
        self.assertEqual(to, ['Steven Rostedt <rostedt@goodmis.org>', 'x86@kernel.org'])
        self.assertEqual(cc, ['Mark Rutland <mark.rutland@arm.com>',
                              'linux-kernel@vger.kernel.org'])
        with self.assertRaisesRegex(WorkbenchError, 'no maintainer'):
            series.parse_get_maintainer('linux-kernel@vger.kernel.org (open list)\n')


if __name__ == '__main__':
    unittest.main()
