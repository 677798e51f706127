"""Running programs and git, messages to the user, and the error the user must act on.

Every other module runs programs through run() and git(), so that a failure names the
command (and its log) and ends the workbench with exit status 1, without a traceback.
"""

import os
import subprocess
import sys
import threading


class WorkbenchError(Exception):
    """An error the user must act on; printed without a traceback, exit status 1."""


GIT_IDENT = {
    'GIT_AUTHOR_NAME': 'workbench', 'GIT_AUTHOR_EMAIL': 'workbench@localhost',
    'GIT_COMMITTER_NAME': 'workbench', 'GIT_COMMITTER_EMAIL': 'workbench@localhost',
}


def say(msg):
    print(f'workbench: {msg}', file=sys.stderr, flush=True)


def tool_env():
    env = dict(os.environ)
    cargo_bin = os.path.expanduser('~/.cargo/bin')
    if cargo_bin not in env.get('PATH', '').split(':'):
        env['PATH'] = cargo_bin + ':' + env.get('PATH', '')
    env.setdefault('LIBCLANG_PATH', '/usr/lib/llvm-19/lib')
    return env


def run(cmd, cwd=None, env=None, check=True, capture=False, what=None, log=None, input=None):
    """Run a command; on failure raise WorkbenchError naming it (and its log)."""
    e = tool_env()
    if env:
        e.update(env)
    try:
        if log:
            with open(log, 'ab') as fh:
                p = subprocess.run(cmd, cwd=cwd, env=e, stdout=fh, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL)
        else:
            p = subprocess.run(cmd, cwd=cwd, env=e, input=input,
                               stdin=None if input is not None else subprocess.DEVNULL,
                               stdout=subprocess.PIPE if capture else None,
                               stderr=subprocess.PIPE if capture else None,
                               text=True)
    except FileNotFoundError:
        raise WorkbenchError(f'{cmd[0]}: not found (run `tools/workbench setup`)')
    if check and p.returncode != 0:
        detail = ''
        if capture:
            detail = (p.stderr or p.stdout or '').strip()[-2000:]
        elif log:
            detail = f'see {log}:\n' + tail(log, 25)
        raise WorkbenchError(f'{what or " ".join(cmd)} failed (exit {p.returncode})'
                             + (f'\n{detail}' if detail else ''))
    return p


def tail(path, n):
    try:
        with open(path, 'rb') as fh:
            lines = fh.read().decode(errors='replace').splitlines()
    except OSError:
        return ''
    return '\n'.join(lines[-n:])


def git(*args, cwd, capture=True, check=True, env=None):
    e = dict(GIT_IDENT)
    if env:
        e.update(env)
    p = run(['git', *args], cwd=cwd, capture=capture, check=check, env=e,
            what='git ' + ' '.join(args))
    return p.stdout.strip() if capture and p.stdout is not None else p


def one_line(text, limit):
    """`text` with its whitespace runs made single spaces, cut to `limit` characters:
    an error or a tool's output as a result's reason."""
    return ' '.join(str(text).split())[:limit]


def in_threads(fns):
    """Runs the functions at once, one thread each; their results in order, or the first
    exception raised."""
    results = [None] * len(fns)
    errors = [None] * len(fns)

    def call(i):
        try:
            results[i] = fns[i]()
        except BaseException as e:  # re-raised below, in the caller's thread
            errors[i] = e
    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for e in errors:
        if e is not None:
            raise e
    return results
