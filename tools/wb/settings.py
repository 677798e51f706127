"""Where things are: the repository's directories, and the cache of one run (`Paths`).

The kernel work tree and the build outputs live in a cache directory (KWB_CACHE, default
~/.cache/kwb), never in the repository; `Paths` names its parts.
"""

import os
from dataclasses import dataclass

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOLS = os.path.join(REPO, 'tools')
PATCHES = os.path.join(REPO, 'patches')
RESULTS = os.path.join(REPO, 'results')
CI_KERNEL = os.path.join(REPO, 'ci', 'kernel')
GUEST = os.path.join(TOOLS, 'guest')
GUEST_BIN = os.path.join(TOOLS, 'guest-bin')
GUEST_MOD = os.path.join(TOOLS, 'guest-mod')

# The Debian package whose source is the base of the series.
PACKAGE = 'linux-source-7.3'


def cache_dir():
    return os.path.abspath(os.environ.get('KWB_CACHE') or os.path.expanduser('~/.cache/kwb'))


@dataclass(frozen=True)
class Paths:
    """The cache directory and its parts."""
    cache: str
    deb: str        # the downloaded linux-source .deb files
    linux: str      # the work tree (branch series) and the base's git repository
    vanilla: str    # worktree at the base
    scratch: str    # worktree where check, send and check --each apply the series
    build: str      # build directories, <vanilla|patched|each>-<config>
    boot: str       # initramfs images
    logs: str       # build and console logs

    @classmethod
    def at(cls, cache):
        parts = ('deb', 'linux', 'vanilla', 'scratch', 'build', 'boot', 'logs')
        return cls(cache, *(os.path.join(cache, p) for p in parts))

    @classmethod
    def from_env(cls):
        """The paths of this run: under KWB_CACHE, or ~/.cache/kwb."""
        return cls.at(cache_dir())

    def tree(self, vanilla):
        """The source tree of a vanilla or a patched kernel."""
        return self.vanilla if vanilla else self.linux

    def build_dir(self, vanilla, config):
        """Patched and vanilla trees have separate build directories per config."""
        return os.path.join(self.build, f'{"vanilla" if vanilla else "patched"}-{config}')
