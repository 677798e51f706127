"""The guest scripts' output: KTAP results and bench figures (tools/guest/lib.sh).

The results are read with the base tree's own tools/testing/kunit/kunit.py parse, the
parser the kernel's KUnit output goes through, so the guest's format is checked by a
tool that nobody here wrote. The guest's lines are taken from the console log first:
between the WB-GUEST-START and WB-GUEST-EXIT markers, without the kernel's printk lines
(which carry a "[ seconds]" prefix and would otherwise be read as the KTAP prefix).
"""

import json
import re

PRINTK_RE = re.compile(r'^\[\s*\d+\.\d+\]')
RESULT_RE = re.compile(r'^\s*(ok|not ok) \d+ (?:- )?([^#]*?)\s*(?:#.*)?$')
SUBTEST_RE = re.compile(r'^\s*# Subtest: (.*?)\s*$')
FIGURE_RE = re.compile(r'^\s*# wb-figure (\S+)(.*)$')


def guest_lines(log_text):
    """The guest's own lines of a console log, in order, with the console's carriage
    returns stripped: everything between WB-GUEST-START and WB-GUEST-EXIT (or the end
    of the log) that is not a kernel printk line."""
    out, inside = [], False
    for raw in log_text.splitlines():
        line = raw.rstrip('\r\n').rstrip('\r')
        if line.startswith('WB-GUEST-START'):
            inside = True
            continue
        if line.startswith('WB-GUEST-EXIT'):
            inside = False
            continue
        if inside and not PRINTK_RE.match(line):
            out.append(line)
    return out


def failures(lines):
    """{path: why} for every "not ok" line at any depth, subtests' own result lines
    included: why is the diagnostic line that lib.sh's not_ok prints just before it
    ("# name: why"). A path is the names of the enclosing subtests and the result's
    own, joined by ': ', as `flatten` builds it. A subtest's lines are indented by four
    spaces a level and open with "# Subtest: NAME"."""
    found, stack, prev = {}, [], ''
    for line in lines:
        depth = (len(line) - len(line.lstrip(' '))) // 4
        m = SUBTEST_RE.match(line)
        if m and depth > 0:
            del stack[depth - 1:]
            stack.append(m.group(1))
        m = RESULT_RE.match(line)
        if m:
            name = m.group(2).strip()
            path = ': '.join(stack[:depth] + [name])
            del stack[depth:]
            if m.group(1) == 'not ok':
                why = prev.strip()
                why = why[1:].strip() if why.startswith('#') else ''
                if why.startswith(name + ':'):
                    why = why[len(name) + 1:].strip()
                found[path] = why
        prev = line
    return found


def flatten(json_text, why=None):
    """[(path, status, why)] from the JSON of `kunit.py parse --json`: one entry per test
    case, its path the names of its groups and its own, joined by ': '. status is
    'PASS', 'FAIL', 'SKIP' or kunit.py's other words."""
    why = why or {}
    data = json.loads(json_text)
    out = []

    def walk(node, path):
        for case in node.get('test_cases') or []:
            full = ': '.join(path + [case.get('name', '?')])
            out.append((full, case.get('status', ''), why.get(full, '')))
        for group in node.get('sub_groups') or []:
            walk(group, path + [group.get('name') or '?'])

    walk(data, [])
    return out


def figures(log_text, kind):
    """The bench figures of one kind, in order: the key=value pairs of every
    "# wb-figure KIND key=value ..." line, as dicts of strings."""
    out = []
    for line in guest_lines(log_text):
        m = FIGURE_RE.match(line)
        if m and m.group(1) == kind:
            out.append(dict(kv.split('=', 1) for kv in m.group(2).split() if '=' in kv))
    return out


def results(json_text, lines):
    """[(path, status, why)]: the test cases of kunit.py's JSON, and a failure for every
    subtest whose own result line says "not ok" but none of whose cases failed (a guest
    script that died after passing checks): kunit.py's JSON lists only leaf cases."""
    why = failures(lines)
    cases = flatten(json_text, why)
    failed = [path for path, status, _ in cases if status != 'PASS' and status != 'SKIP']
    cases += [(path, 'FAIL', w) for path, w in why.items()
              if not any(f == path or f.startswith(path + ': ') for f in failed)]
    return cases
