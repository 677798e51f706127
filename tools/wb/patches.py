"""The product in the repository: patches/series, its patch files, and the copy of every
file the series adds (the overlay directories)."""

import os
import re
from dataclasses import dataclass

from .settings import PATCHES, REPO
from .util import WorkbenchError

# Top-level directories whose files the series may add; the repo keeps a copy of each.
OVERLAY_DIRS = ('arch', 'kernel', 'include', 'Documentation', 'rust', 'lib', 'mm', 'samples')

COVER = '0000-cover-letter.patch'


@dataclass
class Series:
    patches: list          # file names, in order
    package_version: str   # linux-source-7.3 version last exported against, or None


SERIES_VERSION_RE = re.compile(r'^#\s*linux-source-7\.3\s+(\S+)\s*$')
PATCH_NAME_RE = re.compile(r'^\d{4}-[A-Za-z0-9._-]+\.patch$')


def _series_entry(lineno, line, patches, present_files):
    """Raise WorkbenchError unless `line` names a patch file that can follow `patches`."""
    if len(line.split()) != 1:
        raise WorkbenchError(f'patches/series:{lineno}: expected one file name, got {line!r}')
    if not PATCH_NAME_RE.match(line):
        raise WorkbenchError(f'patches/series:{lineno}: {line!r} is not a NNNN-name.patch file')
    if line in patches:
        raise WorkbenchError(f'patches/series:{lineno}: {line} is listed twice')
    if line not in present_files:
        raise WorkbenchError(f'patches/series:{lineno}: {line} is listed but patches/{line} does not exist')


def parse_series(text, present_files):
    """Parse patches/series against the *.patch files present in patches/.

    Blank lines and '#' comments are ignored; a comment '# linux-source-7.3 VERSION'
    records the package version. Every entry must name an existing file, once; every
    NNNN-*.patch file (other than the cover letter 0000-*) must be listed.
    """
    patches = []
    version = None
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        if line.startswith('#'):
            m = SERIES_VERSION_RE.match(line)
            if m:
                version = m.group(1)
            continue
        _series_entry(lineno, line, patches, present_files)
        patches.append(line)
    unlisted = sorted(f for f in present_files
                      if f.endswith('.patch') and not f.startswith('0000-') and f not in patches)
    if unlisted:
        raise WorkbenchError('patches/ has files not in patches/series: ' + ', '.join(unlisted))
    return Series(patches, version)


def format_series(patches, package_version):
    lines = ['# Applied with `git am` in this order onto the base tree from Debian\'s',
             '# linux-source-7.3 package (tools/workbench source). Last exported against:',
             f'# linux-source-7.3 {package_version}']
    return '\n'.join(lines + list(patches)) + '\n'


def read_series():
    path = os.path.join(PATCHES, 'series')
    if not os.path.isfile(path):
        raise WorkbenchError('patches/series does not exist')
    with open(path) as fh:
        text = fh.read()
    return parse_series(text, set(os.listdir(PATCHES)))


def repo_overlay_files():
    """The repository's copies of the files the series adds, relative to the repo."""
    files = []
    for d in OVERLAY_DIRS:
        top = os.path.join(REPO, d)
        for root, _, names in os.walk(top):
            for n in names:
                files.append(os.path.relpath(os.path.join(root, n), REPO))
    return sorted(files)
