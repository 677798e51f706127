"""Unit tests of vmlinux.py: call graphs from objdump, panic paths, leaf functions,
the split probe's offset."""

import hashlib
import os
import shutil
import subprocess
import tempfile
import unittest

from wb import vmlinux
from wb.util import WorkbenchError


class TestPanicPaths(unittest.TestCase):
    DIS = '''
ffffffff81000000 <__execslot_lookup>:
ffffffff81000000:	call   ffffffff81000100 <_RNvCs1_8execslot7page_of>
ffffffff81000005:	jmp    ffffffff81000009 <__execslot_lookup+0x9>
ffffffff81000009:	ret

ffffffff81000100 <_RNvCs1_8execslot7page_of>:
ffffffff81000100:	call   ffffffff81000300 <mutex_lock>
ffffffff81000105:	ret

ffffffff81000200 <execslot_free_locked>:
ffffffff81000200:	call   ffffffff81000400 <_RNvCs1_8execslot4free>
ffffffff81000205:	ret

ffffffff81000300 <mutex_lock>:
ffffffff81000300:	call   ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>
ffffffff81000305:	ret

ffffffff81000400 <_RNvCs1_8execslot4free>:
ffffffff81000400:	jmp    ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>

ffffffff81000500 <_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow>:
ffffffff81000500:	ud2
'''

    def test_graph(self):
        g = vmlinux.call_graph(self.DIS)
        self.assertEqual(g['__execslot_lookup'], {'_RNvCs1_8execslot7page_of'})
        self.assertEqual(g['_RNvCs1_8execslot4free'],
                         {'_RNvNtNtCs2_4core9panicking11panic_const24panic_const_sub_overflow'})

    def test_paths(self):
        g = vmlinux.call_graph(self.DIS)
        found = vmlinux.panic_paths(g, ['__execslot_lookup', 'execslot_free_locked'])
        # C functions are not followed: mutex_lock's call does not count.
        self.assertIsNone(found['__execslot_lookup'])
        self.assertEqual(found['execslot_free_locked'][:2],
                         ['execslot_free_locked', '_RNvCs1_8execslot4free'])
        with self.assertRaises(WorkbenchError):
            vmlinux.panic_paths(g, ['nosuch'])

    def test_leaf(self):
        g = vmlinux.call_graph(self.DIS)
        g['__execslot_contains'] = {'__x86_return_thunk'}
        found = vmlinux.non_leaf_calls(g, ['__execslot_lookup', '__execslot_contains'])
        self.assertEqual(found['__execslot_lookup'], ['_RNvCs1_8execslot7page_of'])
        self.assertEqual(found['__execslot_contains'], [])
        g['__execslot_contains'].add('__fentry__')
        self.assertEqual(vmlinux.non_leaf_calls(g, ['__execslot_contains'])['__execslot_contains'],
                         ['__fentry__'])
        with self.assertRaises(WorkbenchError):
            vmlinux.non_leaf_calls(g, ['nosuch'])


class TestSplitProbe(unittest.TestCase):
    def test_split_probe_offset(self):
        dis = """
Disassembly of section .text:

ffffffff810539b0 <__change_page_attr_set_clr>:
ffffffff810539b0:\tcall   ffffffff81063e70 <__fentry__>
ffffffff81053fb2:\tcall   ffffffff81051480 <flush_tlb_all>
ffffffff81053fb7:\tjmp    ffffffff81053a00 <__change_page_attr_set_clr+0x50>
"""
        f = '__change_page_attr_set_clr'
        self.assertEqual(vmlinux.split_probe_offset(dis, f), f + '+0x602')
        with self.assertRaisesRegex(ValueError, '2 times'):
            vmlinux.split_probe_offset(dis + dis.splitlines()[5] + '\n', f)
        with self.assertRaisesRegex(ValueError, '0 times'):
            vmlinux.split_probe_offset(dis, 'other')


class TestSections(unittest.TestCase):
    def test_text_section_as_objcopy_reads_it(self):
        """The section's bytes are those objcopy gives, on a real ELF (objcopy itself)."""
        exe = os.path.realpath(shutil.which('objcopy'))
        with open(exe, 'rb') as fh:
            data = fh.read()
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, 'text.bin')
            subprocess.run(['objcopy', '-O', 'binary', '--only-section=.text',
                            exe, out], check=True)
            with open(out, 'rb') as fh:
                want = fh.read()
        self.assertGreater(len(want), 0)
        self.assertEqual(vmlinux.elf_section(data, '.text'), want)
        self.assertEqual(vmlinux.text_digest(exe), hashlib.sha256(want).hexdigest()[:12])
        with self.assertRaisesRegex(WorkbenchError, 'no section .nosuch'):
            vmlinux.elf_section(data, '.nosuch')
        with self.assertRaisesRegex(WorkbenchError, 'not a 64-bit'):
            vmlinux.elf_section(b'#!/bin/sh\n', '.text')

    def test_text_digest_of_a_bad_file_says_which(self):
        """Missing, empty, cut short: each a WorkbenchError that names the file."""
        exe = os.path.realpath(shutil.which('objcopy'))
        with open(exe, 'rb') as fh:
            head = fh.read(0x40)
        with tempfile.TemporaryDirectory() as d:
            for name, data in (('empty', b''), ('short', head), ('text', b'#!/bin/sh\n')):
                path = os.path.join(d, name)
                with open(path, 'wb') as fh:
                    fh.write(data)
                with self.assertRaisesRegex(WorkbenchError, f'^{path}: '):
                    vmlinux.text_digest(path)
            with self.assertRaisesRegex(WorkbenchError, 'nosuch'):
                vmlinux.text_digest(os.path.join(d, 'nosuch'))


if __name__ == '__main__':
    unittest.main()
