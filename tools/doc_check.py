#!/usr/bin/env python3
"""List the statements of an old README that the new documentation lost.

    python3 tools/doc_check.py               # old: main's README.md
    python3 tools/doc_check.py --old HEAD~1  # old: another revision's
    python3 tools/doc_check.py --old-file /tmp/README.old.md

Moving text between files by hand loses sentences without anyone seeing
it.  This splits the old README.md (from a git revision, main by default)
and the new README.md with doc/*.md (from the working tree) into
statements: the sentences of the prose, each table row, each line of a
code block, each heading.  Line wrapping, indentation, runs of blanks,
heading levels, list markers and link targets (`[text](file.md#x)` reads
as `text`) are normalised away, so text that was only moved, re-wrapped or
given a link counts as kept.  Every old statement not found in the new
set is printed with its old line number.  It also checks every relative
link of the new files: the file must exist and the #anchor must be one of
its headings (as GitHub makes them).  The exit status is 1 if a statement
is missing or a link is broken.  Standard library only.
"""

import argparse
import glob
import os
import re
import subprocess
import sys

LINK = re.compile(r'\[([^\]]+)\]\([^)\s]*\)')
LIST_ITEM = re.compile(r'^(\s*)([*+-]|\d+\.)\s+')
# A sentence ends at . ! or ? followed by a blank and something that can
# start a sentence; "e.g. x" and "1.5 s" are not split.
SENTENCE_END = re.compile(r'(?<=[.!?])\s+(?=[A-Z`*"(\'])')


def norm(text):
    text = LINK.sub(r'\1', text)
    return ' '.join(text.split())


def statements(text):
    """Yield (line number, statement) for the markdown text."""
    fence = False
    para = []
    para_start = 0

    def flush():
        if not para:
            return []
        joined = norm(' '.join(para))
        para.clear()
        return [(para_start, s) for s in SENTENCE_END.split(joined) if s]

    for no, line in enumerate(text.split('\n'), 1):
        stripped = line.strip()
        if stripped.startswith('```'):
            yield from flush()
            fence = not fence
            continue
        if fence:
            if stripped:
                yield no, 'code: ' + norm(stripped)
            continue
        if not stripped or stripped.startswith('<!--'):
            yield from flush()
            continue
        if stripped.startswith('|'):
            yield from flush()
            cells = [norm(c) for c in stripped.strip('|').split('|')]
            if all(re.fullmatch(r':?-+:?', c) for c in cells if c):
                continue
            yield no, 'row: ' + ' | '.join(cells)
            continue
        if stripped.startswith('#'):
            yield from flush()
            yield no, 'heading: ' + norm(stripped.lstrip('#'))
            continue
        m = LIST_ITEM.match(line)
        if m:
            yield from flush()
            line = line[m.end():]
        if not para:
            para_start = no
        para.append(line)
    yield from flush()


def slug(heading):
    """The anchor GitHub gives a heading."""
    text = LINK.sub(r'\1', heading.strip().lower())
    return re.sub(r'[^\w\- ]', '', text).replace(' ', '-')


def anchors(text):
    seen = {}
    fence = False
    for line in text.split('\n'):
        if line.strip().startswith('```'):
            fence = not fence
        elif not fence and re.match(r'#+ ', line):
            s = slug(line.lstrip('#'))
            n = seen.get(s, 0)
            seen[s] = n + 1
            yield s if n == 0 else '%s-%d' % (s, n)


def broken_links(path):
    """Yield (line number, target) for each relative link that leads nowhere."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    fence = False
    for no, line in enumerate(text.split('\n'), 1):
        if line.strip().startswith('```'):
            fence = not fence
        if fence:
            continue
        for target in re.findall(r'\]\(([^)\s]+)\)', line):
            if re.match(r'[a-z]+:', target):
                continue
            name, _, anchor = target.partition('#')
            dest = os.path.normpath(os.path.join(os.path.dirname(path), name)) \
                if name else path
            if not os.path.isfile(dest):
                yield no, target
                continue
            if anchor:
                with open(dest, encoding='utf-8') as f:
                    if anchor not in set(anchors(f.read())):
                        yield no, target


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--old', default='main',
                    help='git revision whose README.md is the old text')
    ap.add_argument('--old-file',
                    help='a file to read as the old text instead')
    ap.add_argument('new', nargs='*',
                    help='the new files (default: README.md doc/*.md)')
    args = ap.parse_args()

    top = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if args.old_file:
        with open(args.old_file, encoding='utf-8') as f:
            old = f.read()
    else:
        old = subprocess.run(['git', 'show', args.old + ':README.md'],
                             cwd=top, check=True, capture_output=True,
                             text=True).stdout
    new_files = args.new or ([os.path.join(top, 'README.md')] +
                             sorted(glob.glob(os.path.join(top, 'doc', '*.md'))))
    new = set()
    for path in new_files:
        with open(path, encoding='utf-8') as f:
            new.update(s for _, s in statements(f.read()))

    missing = [(no, s) for no, s in statements(old) if s not in new]
    for no, s in missing:
        print('%d: %s' % (no, s))
    print('%d old statement(s) missing' % len(missing), file=sys.stderr)

    broken = [(path, no, target) for path in new_files
              for no, target in broken_links(path)]
    for path, no, target in broken:
        print('%s:%d: broken link %s' % (os.path.relpath(path, top), no, target))
    if broken:
        print('%d broken link(s)' % len(broken), file=sys.stderr)
    return 1 if missing or broken else 0


if __name__ == '__main__':
    sys.exit(main())
