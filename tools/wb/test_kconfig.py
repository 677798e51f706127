"""Unit tests of kconfig.py: the config tables, fragments and .config verification."""

import os
import unittest

from wb import kconfig, settings
from wb.util import WorkbenchError


class TestConfig(unittest.TestCase):
    def test_dropped_option_is_named(self):
        frags = [('base.config', 'CONFIG_RUST=y\nCONFIG_KUNIT=y\n# CONFIG_FOO is not set\n')]
        dot = 'CONFIG_KUNIT=y\n# CONFIG_RUST is not set\n'
        self.assertEqual(kconfig.verify_config(frags, dot),
                         ['CONFIG_RUST: base.config asks y, .config has n'])

    def test_later_fragment_overrides(self):
        frags = [('base.config', 'CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE=y\n'),
                 ('os.config', '# CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is not set\n'
                               'CONFIG_CC_OPTIMIZE_FOR_SIZE=y\n')]
        dot = ('# CONFIG_CC_OPTIMIZE_FOR_PERFORMANCE is not set\n'
               'CONFIG_CC_OPTIMIZE_FOR_SIZE=y\n')
        self.assertEqual(kconfig.verify_config(frags, dot), [])

    def test_values_and_absent_unset(self):
        frags = [('f', 'CONFIG_NR_CPUS=4\n# CONFIG_X is not set\n')]
        self.assertEqual(kconfig.verify_config(frags, 'CONFIG_NR_CPUS=4\n'), [])
        self.assertEqual(kconfig.verify_config(frags, 'CONFIG_NR_CPUS=64\n'),
                         ['CONFIG_NR_CPUS: f asks 4, .config has 64'])
        self.assertEqual(kconfig.verify_config(frags, 'CONFIG_NR_CPUS=4\nCONFIG_X=y\n'),
                         ['CONFIG_X: f asks n, .config has y'])

    def test_shipped_fragments_parse(self):
        for name in ('base.config', 'optimize-size.config', 'vng.config', 'series.config'):
            with open(os.path.join(settings.CI_KERNEL, name)) as fh:
                self.assertTrue(kconfig.parse_config(fh.read()), name)
        with open(os.path.join(settings.CI_KERNEL, 'base.config')) as fh:
            base = kconfig.parse_config(fh.read())
        for opt in ('RUST', 'FTRACE', 'FUNCTION_TRACER', 'DYNAMIC_FTRACE', 'FTRACE_STARTUP_TEST',
                    'KPROBES', 'OPTPROBES', 'KPROBES_ON_FTRACE', 'KPROBE_EVENTS', 'FPROBE',
                    'KALLSYMS_ALL', 'DEBUG_FS', 'UNWINDER_ORC', 'KUNIT', 'KPROBES_SANITY_TEST',
                    'FPROBE_SANITY_TEST', 'FUNCTION_GRAPH_TRACER', 'CC_OPTIMIZE_FOR_PERFORMANCE'):
            self.assertEqual(base.get('CONFIG_' + opt), 'y', opt)
        self.assertIn(base.get('CONFIG_SAMPLE_FTRACE_OPS'), ('y', 'm'))

    def test_fragments_per_config(self):
        names = lambda c, v=False: [os.path.basename(f) for f in kconfig.fragments(c, v)]
        self.assertEqual(names('default'), ['base.config', 'series.config'])
        self.assertEqual(names('default', True), ['base.config'])
        self.assertEqual(names('stress'), ['base.config', 'stress.config', 'series.config',
                                           'stress-series.config'])
        self.assertEqual(names('stress', True), ['base.config', 'stress.config'])
        self.assertEqual(names('norust'), ['base.config', 'norust.config',
                                           'norust-series.config'])
        self.assertEqual(names('noexecslot'), ['base.config', 'noexecslot-series.config'])
        for c in kconfig.CONFIGS:
            for f in kconfig.fragments(c) + kconfig.fragments(c, True):
                with open(f) as fh:
                    self.assertTrue(kconfig.parse_config(fh.read()), f)
        with open(os.path.join(settings.CI_KERNEL, 'stress.config')) as fh:
            stress = kconfig.parse_config(fh.read())
        for opt in ('PROVE_LOCKING', 'DEBUG_KMEMLEAK', 'DEBUG_VM', 'DEBUG_WX', 'FAULT_INJECTION'):
            self.assertEqual(stress.get('CONFIG_' + opt), 'y', opt)


class TestConfigTables(unittest.TestCase):
    def test_unknown_fragment_config(self):
        with self.assertRaisesRegex(WorkbenchError, 'unknown config'):
            kconfig.fragments('huge')

    def test_kernel_path(self):
        self.assertEqual(kconfig.kernel_path(True, 'default'), 'mainline')
        self.assertEqual(kconfig.kernel_path(False, 'norust'), 'mainline')
        self.assertEqual(kconfig.kernel_path(False, 'noexecslot'), 'mainline')
        self.assertEqual(kconfig.kernel_path(False, 'llvm'), 'execslot')
        self.assertEqual(kconfig.kernel_path(False, 'stress'), 'execslot')

    def test_series_fragment_only_for_patched(self):
        names = lambda fs: [os.path.basename(f) for f in fs]
        self.assertEqual(names(kconfig.fragments('os', vanilla=True)),
                         ['base.config', 'optimize-size.config'])
        self.assertEqual(names(kconfig.fragments('os')),
                         ['base.config', 'optimize-size.config', 'series.config'])


class TestConfigs(unittest.TestCase):
    def test_no_rust_option_without_rust(self):
        """A config that turns Rust off asks for no option that needs it (Kconfig would
        drop it, and `build` would rightly fail on that)."""
        for config in kconfig.CONFIGS:
            for vanilla in (False, True):
                merged = {}
                for path in kconfig.fragments(config, vanilla):
                    with open(path) as fh:
                        merged.update(kconfig.parse_config(fh.read()))
                if merged.get('CONFIG_RUST') != 'n':
                    continue
                on = [k for k, v in merged.items()
                      if v != 'n' and k.startswith('CONFIG_RUST')]
                self.assertEqual(on, [], f'{config} (vanilla={vanilla})')


if __name__ == '__main__':
    unittest.main()
