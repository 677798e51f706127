"""A newc cpio writer, so the initramfs can hold /dev/console without root or mknod."""

import os
import stat


class Cpio:
    def __init__(self):
        self.entries = []   # (name, mode, data, rdev_major, rdev_minor)
        self.names = set()

    def _add(self, name, mode, data=b'', major=0, minor=0):
        name = name.lstrip('/')
        if name in self.names:
            raise ValueError(f'cpio: {name} added twice')
        self.names.add(name)
        self.entries.append((name, mode, data, major, minor))

    def dir(self, name, perm=0o755):
        self._add(name, stat.S_IFDIR | perm)

    def file(self, name, data, perm=0o644):
        self._add(name, stat.S_IFREG | perm, data)

    def symlink(self, name, target):
        self._add(name, stat.S_IFLNK | 0o777, target.encode())

    def chardev(self, name, major, minor, perm=0o600):
        self._add(name, stat.S_IFCHR | perm, b'', major, minor)

    def tree(self, src, dest):
        """Add the directory src (recursively) at dest; dest's parents must exist."""
        self.dir(dest)
        for root, dirs, files in os.walk(src):
            dirs.sort()
            rel = os.path.relpath(root, src)
            base = dest if rel == '.' else f'{dest}/{rel}'
            for d in dirs:
                path = os.path.join(root, d)
                if os.path.islink(path):
                    self.symlink(f'{base}/{d}', os.readlink(path))
                else:
                    self.dir(f'{base}/{d}')
            for f in sorted(files):
                path = os.path.join(root, f)
                if os.path.islink(path):
                    self.symlink(f'{base}/{f}', os.readlink(path))
                else:
                    with open(path, 'rb') as fh:
                        self.file(f'{base}/{f}', fh.read(), os.stat(path).st_mode & 0o777)

    def bytes(self):
        out = bytearray()
        ino = 1

        def pad4():
            while len(out) % 4:
                out.append(0)

        def header(name, mode, size, major, minor, nlink):
            nonlocal ino
            fields = [ino, mode, 0, 0, nlink, 0, size, 0, 0, major, minor, len(name) + 1, 0]
            ino += 1
            out.extend(b'070701' + b''.join(b'%08X' % v for v in fields))
            out.extend(name.encode() + b'\0')
            pad4()

        for name, mode, data, major, minor in self.entries:
            nlink = 2 if stat.S_ISDIR(mode) else 1
            header(name, mode, len(data), major, minor, nlink)
            out.extend(data)
            pad4()
        header('TRAILER!!!', 0, 0, 0, 0, 1)
        return bytes(out)
