"""Unit tests of each.py: the switch points of check --each."""

import email
import os
import unittest

from wb import each, settings


class TestSwitchPoints(unittest.TestCase):
    def test_switch_points_name_patches_of_the_series(self):
        subjects = []
        for name in os.listdir(settings.PATCHES):
            if name.endswith('.patch') and not name.startswith('0000-'):
                with open(os.path.join(settings.PATCHES, name)) as fh:
                    msg = email.message_from_file(fh)
                subject = ' '.join(str(msg['Subject']).split())
                subjects.append(subject.split('] ', 1)[1])
        for subject, path in each.SWITCH_POINTS.items():
            self.assertIn(subject, subjects)
            self.assertIn(path, ('ftrace', 'execslot'))


if __name__ == '__main__':
    unittest.main()
