"""Run the shell commands of README.md and docs/*.md, so that the documentation stays true.

Every fenced ```bash block of the given markdown files is split into commands (lines joined at a
trailing backslash, comment lines dropped). Before running anything, each command is checked
statically: every ``configs/...`` and ``tools/...`` path it names exists, and every ``--flag`` it
gives to a ``tools/*.py`` script (directly, or through ``tools/dist_train.sh`` / ``dist_test.sh``
/ ``slurm_train.sh``) is an option of that script's argparse parser. Then the commands run in
order, each in its own ``bash -c`` (so a command cannot rely on an earlier line's ``export``, ``cd``
or ``$!``, nor span lines as a ``for ... done`` loop: such blocks need a skip marker), in a scratch copy of the checkout (the files git tracks plus the
untracked files it does not ignore), so ``data/`` and ``work_dirs/`` start empty and the
documented order (e.g. README's ``make_sample_data.py`` first) is part of what is checked. A
command that already passed in the same scratch directory (earlier in the run, or in an earlier run
with the same ``--scratch``: they are listed in its ``.check_docs_passed``) is not run again.

A block that cannot run here (GPUs, real datasets, several nodes, long schedules, placeholders)
carries a marker on the line before its fence, with the reason::

    <!-- docs-check: skip (needs 8 GPUs and COCO) -->

Usage::

    python tools/check_docs.py                      # README.md and docs/*.md
    python tools/check_docs.py README.md docs/training.md --timeout 3600
    python tools/check_docs.py --static             # the static checks only (seconds)
"""
import argparse
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Set
from unittest import mock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FENCE = re.compile(r'^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$')
SKIP = re.compile(r'^\s*<!-- docs-check: skip \((?P<reason>.+)\) -->\s*$')
ENV_ASSIGNMENT = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*=')
TOOL = re.compile(r'^(?:\./)?(?P<path>tools/[\w.-]+\.(?:py|sh))$')
REPO_PATH = re.compile(r'^(?:\./)?(?P<path>(?:configs|tools)/[\w./-]+)$')
FLAG = re.compile(r'^--[A-Za-z][\w-]*$')
SEPARATORS = {';', '&', '&&', '||', '|'}
# shell scripts that hand their options to a python tool
FORWARDS = {
    'tools/dist_train.sh': 'tools/train.py',
    'tools/dist_test.sh': 'tools/test.py',
    'tools/slurm_train.sh': 'tools/train.py',
}


@dataclass(frozen=True)
class DocCommand:
    """One command of a ```bash block: where it is, its text as written, and why it is skipped (or None)."""
    doc: str
    line: int
    text: str
    skip: Optional[str] = None

    @property
    def where(self) -> str:
        return f'{self.doc}:{self.line}'


def extract(text: str, doc: str = '<text>') -> List[DocCommand]:
    """The commands of every ```bash fence in a markdown text, in order.

    Lines ending with a backslash continue on the next line (the command keeps its newlines, as
    pasted into a shell), and so do lines that start with ``--`` or ``[-`` (the wrapped options of a
    synopsis, whose flags are checked with the tool's); lines that are empty or start with ``#`` are
    dropped. ``line`` is the
    1-based line of the command's first line in the file.
    """
    lines = text.splitlines()
    commands: List[DocCommand] = []
    i = 0
    while i < len(lines):
        fence = FENCE.match(lines[i])
        if not fence:
            i += 1
            continue
        indent, lang = fence['indent'], fence['lang']
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), '')
        marker = SKIP.match(previous)
        i += 1
        block_start = i
        while i < len(lines) and lines[i].strip() != '```':
            i += 1
        if lang == 'bash':
            body = [line[len(indent):] if line.startswith(indent) else line.lstrip() for line in lines[block_start:i]]
            commands.extend(_commands(body, block_start + 1, doc, marker['reason'] if marker else None))
        i += 1
    return commands


def _commands(body: Sequence[str], first_line: int, doc: str, skip: Optional[str]) -> List[DocCommand]:
    """Logical lines of a block body: continuation lines joined, comments and blank lines dropped."""
    commands: List[DocCommand] = []
    current: List[str] = []
    start = first_line
    for offset, line in enumerate(body):
        if not current:
            if not line.strip() or line.lstrip().startswith('#'):
                continue
            if line.lstrip().startswith(('--', '[-')) and commands:
                last = commands.pop()
                current, start = [last.text], last.line
            else:
                start = first_line + offset
        current.append(line)
        if not line.rstrip().endswith('\\'):
            commands.append(DocCommand(doc, start, '\n'.join(current).strip(), skip))
            current = []
    if current:
        raise ValueError(f'{doc}:{start}: the command ends with a backslash but the block ends')
    return commands


def extract_files(paths: Sequence[str], root: str = ROOT) -> List[DocCommand]:
    """The commands of each markdown file (paths relative to `root`), in the order given."""
    commands: List[DocCommand] = []
    for path in paths:
        with open(os.path.join(root, path), encoding='utf-8') as f:
            commands.extend(extract(f.read(), path))
    return commands


def words(command: str) -> List[str]:
    """The command's words as the shell splits them (quotes removed, ``# comments`` dropped)."""
    lexer = shlex.shlex(command.replace('\\\n', ' '), posix=True)
    lexer.whitespace_split = True
    lexer.commenters = '#'
    return list(lexer)


def tool_calls(command: str) -> List[tuple]:
    """(tool path, the words after it up to the next shell separator) for every ``tools/*`` script
    the command runs; for dist_train.sh / dist_test.sh / slurm_train.sh the python tool they call."""
    calls, tool, args = [], None, []
    for word in words(command) + [';']:
        if word in SEPARATORS or word.endswith(';'):
            if tool:
                calls.append((FORWARDS.get(tool, tool), args))
            tool, args = None, []
        elif tool:
            args.append(word)
        else:
            match = TOOL.match(word)
            if match:
                tool = match['path']
    return calls


def flags(args: Sequence[str]) -> List[str]:
    """The ``--option`` words of a tool call, as written (``[--amp`` and ``--out=x`` give ``--amp``, ``--out``)."""
    found = []
    for arg in args:
        name = arg.lstrip('[').rstrip(']').split('=', 1)[0]
        if FLAG.match(name):
            found.append(name)
    return found


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser):
        super().__init__()
        self.parser = parser


def _capture(parser: argparse.ArgumentParser, *args, **kwargs):
    raise _Parsed(parser)


_OPTIONS: Dict[str, Set[str]] = {}


def tool_options(tool: str, root: str = ROOT) -> Set[str]:
    """The ``--options`` a tools/*.py script's argparse parser accepts (from its usage line).

    The script runs as ``__main__`` until it parses its arguments; the parser is taken there, so
    nothing of the tool itself runs. Cached per tool for the process.
    """
    if tool not in _OPTIONS:
        path = os.path.join(root, tool)
        argv = sys.argv
        sys.argv = [path]
        try:
            with mock.patch.object(argparse.ArgumentParser, 'parse_known_args', _capture):
                runpy.run_path(path, run_name='__main__')
        except _Parsed as parsed:
            _OPTIONS[tool] = set(re.findall(r'--[A-Za-z][\w-]*', parsed.parser.format_usage()))
        else:
            raise RuntimeError(f'{tool} finished without parsing arguments with argparse: cannot check its options')
        finally:
            sys.argv = argv
    return _OPTIONS[tool]


def static_problems(commands: Sequence[DocCommand], root: str = ROOT) -> List[str]:
    """What is wrong in the commands without running them: missing configs / tools, unknown tool options."""
    problems = []
    for command in commands:
        try:
            command_words = words(command.text)
        except ValueError as error:  # unbalanced quotes
            problems.append(f'{command.where}: the shell cannot split it ({error}): {command.text}')
            continue
        for word in command_words:
            match = REPO_PATH.match(word.split('=', 1)[-1])
            if match and not os.path.exists(os.path.join(root, match['path'])):
                problems.append(f'{command.where}: {match["path"]} does not exist')
        for tool, args in tool_calls(command.text):
            if not tool.endswith('.py') or not os.path.isfile(os.path.join(root, tool)):
                continue
            unknown = [flag for flag in flags(args) if flag not in tool_options(tool, root)]
            if unknown:
                problems.append(f'{command.where}: {tool} has no option {", ".join(unknown)}')
    return problems


def scratch_copy(root: str, dest: str) -> str:
    """Copy the checkout's files (tracked, and untracked but not ignored) to `dest`; returns `dest`."""
    listed = subprocess.run(['git', 'ls-files', '-z', '--cached', '--others', '--exclude-standard'], cwd=root,
                            check=True, capture_output=True).stdout.decode().split('\0')
    for name in filter(None, listed):
        source = os.path.join(root, name)
        if os.path.isfile(source):  # tracked files deleted in the work tree are left out
            os.makedirs(os.path.dirname(os.path.join(dest, name)), exist_ok=True)
            shutil.copy2(source, os.path.join(dest, name))
    return dest


@dataclass
class Result:
    command: DocCommand
    status: str  # 'ok', 'FAIL', 'skip', 'same'
    seconds: float = 0.0
    detail: str = ''


PASSED = '.check_docs_passed'


def run_commands(commands: Sequence[DocCommand], cwd: str, timeout: float, log=print) -> List[Result]:
    """Run each command not skipped with ``bash -c`` in `cwd`, in order; a command whose text already
    passed in `cwd` (listed in its ``.check_docs_passed``) is not run again. Failures do not stop the run."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [cwd, os.environ.get('PYTHONPATH')])))
    record = os.path.join(cwd, PASSED)
    passed: Dict[str, str] = {}
    if os.path.isfile(record):
        with open(record, encoding='utf-8') as f:
            passed = dict(json.loads(line) for line in f)
    results = []
    for command in commands:
        if command.skip:
            result = Result(command, 'skip', detail=command.skip)
        elif command.text in passed:
            result = Result(command, 'same', detail=f'passed at {passed[command.text]}')
        else:
            result = _run(command, cwd, env, timeout)
            if result.status == 'ok':
                passed[command.text] = command.where
                with open(record, 'a', encoding='utf-8') as f:
                    f.write(json.dumps([command.text, command.where]) + '\n')
        log(f'[{result.status} {result.seconds:.0f}s] {command.where}: {command.text}'
            + (f'\n    {result.detail}' if result.detail else ''))
        results.append(result)
    return results


def _run(command: DocCommand, cwd: str, env: Dict[str, str], timeout: float) -> Result:
    start = time.monotonic()
    try:
        done = subprocess.run(['bash', '-c', command.text], cwd=cwd, env=env, timeout=timeout,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return Result(command, 'FAIL', time.monotonic() - start, f'no result after {timeout:.0f} s (--timeout)')
    seconds = time.monotonic() - start
    if done.returncode == 0:
        return Result(command, 'ok', seconds)
    tail = '\n    '.join(done.stdout.decode(errors='replace').splitlines()[-25:])
    return Result(command, 'FAIL', seconds, f'exit status {done.returncode}; last lines:\n    {tail}')


def default_docs(root: str = ROOT) -> List[str]:
    """README.md, then docs/*.md in name order."""
    return ['README.md'] + sorted(f'docs/{name}' for name in os.listdir(os.path.join(root, 'docs'))
                                  if name.endswith('.md'))


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Check and run the shell commands of the documentation.')
    parser.add_argument('docs', nargs='*', help='markdown files relative to the repository (default: README.md docs/*.md)')
    parser.add_argument('--static', action='store_true', help='only the static checks; run nothing')
    parser.add_argument('--scratch', help='run in this directory (created, files copied; default: a new temporary one)')
    parser.add_argument('--timeout', type=float, default=3600, help='seconds allowed per command (default 3600)')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    commands = extract_files(args.docs or default_docs())
    problems = static_problems(commands)
    for problem in problems:
        print(f'[static] {problem}')
    print(f'{len(commands)} commands in {len(set(c.doc for c in commands))} files; {len(problems)} static problems')
    if args.static:
        return int(bool(problems))
    scratch = args.scratch or tempfile.mkdtemp(prefix='swin_dense_docs_')
    os.makedirs(scratch, exist_ok=True)
    print(f'scratch copy of the checkout: {scratch_copy(ROOT, scratch)}')
    start = time.monotonic()
    results = run_commands(commands, scratch, args.timeout)
    counts = {status: sum(r.status == status for r in results) for status in ('ok', 'same', 'skip', 'FAIL')}
    print(f'{counts} in {time.monotonic() - start:.0f} s')
    for result in results:
        if result.status == 'FAIL':
            print(f'FAILED {result.command.where}: {result.command.text}')
    return int(bool(problems) or counts['FAIL'] > 0)


if __name__ == '__main__':
    sys.exit(main())
