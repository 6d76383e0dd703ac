"""tools/check_docs.py: how it reads the documentation's commands, the static facts of every documented
command (paths exist, tool options exist), and how it runs commands in a scratch directory."""
import importlib.util
import os

from conftest import ROOT

_spec = importlib.util.spec_from_file_location('check_docs', os.path.join(ROOT, 'tools', 'check_docs.py'))
check_docs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_docs)

DOC = """Intro text.

```bash
# a comment line
OMP_NUM_THREADS=1 python tools/train.py configs/sample/cascade_swinv2_t_sample.py \\
    --work-dir work_dirs/x   # trailing comment
python tools/make_sample_data.py --task ade
```

<!-- docs-check: skip (needs 8 GPUs) -->

```bash
bash tools/dist_train.sh configs/cascade_swinv2_t_coco.py 8 --amp
```

```python
print('not a shell command')
```

* in a list:

  ```bash
  python tools/test.py CONFIG CKPT [--tta] --out=results.pkl
  ```
"""


def test_extract_commands_continuations_comments_skip_markers_and_indented_fences():
    commands = check_docs.extract(DOC, 'DOC.md')
    assert [(c.line, c.skip) for c in commands] == [(5, None), (7, None), (13, 'needs 8 GPUs'), (23, None)]
    first = commands[0]
    assert first.text == ('OMP_NUM_THREADS=1 python tools/train.py configs/sample/cascade_swinv2_t_sample.py \\\n'
                          '    --work-dir work_dirs/x   # trailing comment')
    assert first.where == 'DOC.md:5'
    assert commands[3].text == 'python tools/test.py CONFIG CKPT [--tta] --out=results.pkl'
    # a synopsis wrapped without backslashes: the option lines belong to the command above them
    (synopsis,) = check_docs.extract('```bash\npython tools/test.py C K [--tta]\n    [--show] --out DIR\n```\n')
    assert check_docs.tool_calls(synopsis.text) == [('tools/test.py', ['C', 'K', '[--tta]', '[--show]', '--out', 'DIR'])]


def test_a_block_that_ends_inside_a_command_is_an_error():
    try:
        check_docs.extract('```bash\npython tools/train.py \\\n```\n', 'BAD.md')
    except ValueError as error:
        assert 'BAD.md:2' in str(error)
    else:
        raise AssertionError('a dangling backslash was accepted')


def test_tool_calls_skip_env_prefixes_follow_launch_scripts_and_find_flags():
    commands = check_docs.extract(DOC, 'DOC.md')
    calls = [call for c in commands for call in check_docs.tool_calls(c.text)]
    assert [(tool, check_docs.flags(args)) for tool, args in calls] == [
        ('tools/train.py', ['--work-dir']),  # the trailing comment is not an argument
        ('tools/make_sample_data.py', ['--task']),
        ('tools/train.py', ['--amp']),  # dist_train.sh passes its options to train.py
        ('tools/test.py', ['--tta', '--out']),
    ]
    # separators end a call: the flags of `sleep` / `kill` are not train.py's
    (call,) = check_docs.tool_calls('python tools/train.py C --work-dir w & sleep 60; kill -9 $!')
    assert call == ('tools/train.py', ['C', '--work-dir', 'w'])


def test_static_check_names_missing_paths_and_unknown_options():
    commands = check_docs.extract(
        '```bash\npython tools/train.py configs/no_such_config.py --amp --no-such-option\n'
        'python tools/no_such_tool.py\n```\n', 'BAD.md')
    problems = check_docs.static_problems(commands)
    assert problems == [
        'BAD.md:2: configs/no_such_config.py does not exist',
        'BAD.md:2: tools/train.py has no option --no-such-option',
        'BAD.md:3: tools/no_such_tool.py does not exist',
    ]


def test_every_documented_command_names_existing_files_and_options():
    """README.md and docs/*.md, skipped blocks included: every configs/ and tools/ path exists and every
    --option given to a tools/*.py script (or through dist_train.sh / dist_test.sh) is one it accepts."""
    commands = check_docs.extract_files(check_docs.default_docs())
    assert len({c.doc for c in commands}) >= 10 and len(commands) > 100, 'the documentation was not read'
    assert check_docs.static_problems(commands) == []


def test_run_commands_in_order_in_one_directory(tmp_path):
    commands = check_docs.extract(
        '```bash\necho made > made.txt\ngrep -q made made.txt\nexit 3\n```\n'
        '<!-- docs-check: skip (not here) -->\n```bash\nexit 4\n```\n'
        '```bash\ngrep -q made made.txt\n```\n', 'RUN.md')
    results = check_docs.run_commands(commands, str(tmp_path), timeout=60, log=lambda line: None)
    assert [(r.command.line, r.status) for r in results] == [(2, 'ok'), (3, 'ok'), (4, 'FAIL'), (8, 'skip'),
                                                             (11, 'same')]
    assert 'exit status 3' in results[2].detail and results[3].detail == 'not here'


def test_scratch_copy_holds_the_checkout_without_ignored_outputs(tmp_path):
    check_docs.scratch_copy(ROOT, str(tmp_path))
    assert (tmp_path / 'tools' / 'check_docs.py').read_bytes() == open(os.path.join(ROOT, 'tools', 'check_docs.py'),
                                                                       'rb').read()
    assert (tmp_path / 'configs' / 'sample' / 'upernet_swinv2_t_sample.py').is_file()
    assert not (tmp_path / 'work_dirs').exists() and not (tmp_path / 'data').exists()  # .gitignore'd
