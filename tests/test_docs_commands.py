"""Every command, config, checkpoint and path in README.md and docs/en works as written.

From the shell blocks: ``python tools/X.py`` names a tool that exists and answers ``--help``;
``bash tools/X.sh`` a script that exists; ``make T`` a target of the Makefile; ``pip install``
the extras setup.cfg declares, from the clone (``'.[hub]'``: mmfocal is not on the package
index). Anywhere in the text: ``configs/...py`` and ``tools/...`` paths exist;
``work_dirs/NAME/epoch_N.pth`` (or ``iter_N.pth``) is the last checkpoint that training the
config NAME (or the demo NAME) writes; a ``checkpoint='...'`` is a URL, an ``hf-hub:`` name, a
checkpoint the demos write or a ``checkpoints/`` file that a config names. No page speaks of
how the project is developed.
"""
import configparser
import functools
import glob
import json
import os.path as osp
import re
import shlex
import subprocess
import sys

import pytest

from _helpers import ROOT
from test_docs import markdown_files, read

BLOCK = re.compile(r'^ {0,3}```(\w*)[^\n]*\n(.*?)^ {0,3}```', re.S | re.M)
SHELL = ('shell', 'bash', 'sh', 'console')
CONFIG_PATH = re.compile(r'(?<![\w/.{-])(configs/[\w./-]+\.py)\b')
TOOL_PATH = re.compile(r'(?<![\w/.{-])(tools/[\w./-]+\.(?:py|sh))\b')
WORK_CHECKPOINT = re.compile(r'(?<![\w/.{-])work_dirs/([\w.-]+)/((?:epoch|iter)_\d+)\.pth\b')
CHECKPOINT_ARG = re.compile(r'''checkpoint\s*=\s*['"]([^'"]+)['"]''')
PIP_CLONE = re.compile(r'''^['"]?\.(\[[\w,-]+\])?['"]?$''')
#: demo names of work_dirs/demo_TASK and their configs (tools/demo.py)
DEMOS = {'demo_det': 'configs/detection/demo_mask_rcnn_focalnet.py',
         'demo_seg': 'configs/segmentation/demo_upernet_focal_transformer.py',
         'demo_cls': 'configs/classification/demo_focalnet_digits.py'}
#: words about how the project is developed rather than about the project
PROCESS_WORDS = ('measured here', 'too busy', 'this round', 'main before', '$OUT',
                 'this session', 'the session')
#: commands the docs may show that are not the project's (checked no further)
OTHER_PROGRAMS = {'git', 'cd', 'source', 'deactivate', 'export', 'mim', 'ls', 'cp', 'mkdir',
                  'unzip', 'tar', 'nvidia-smi', 'sudo', 'apt-get', 'apt', 'cat', 'rm', 'ln',
                  'srun', 'sbatch', 'tensorboard', 'curl', 'wget', 'conda', 'python3.11',
                  'echo', 'mv', 'du', 'pytest', 'flake8', 'huggingface-cli', 'gdown', 'time',
                  'trtexec'}


def code_blocks(text: str):
    """[(language, body)] of the fenced code blocks of a markdown text."""
    return [(m.group(1).lower(), m.group(2)) for m in BLOCK.finditer(text)]


def shell_commands(body: str):
    """The commands of a shell block: continuation lines joined, comments and prompts
    dropped, ``&&`` / ``;`` chains split."""
    body = re.sub(r'\\\n\s*', ' ', body)
    out = []
    for line in body.split('\n'):
        line = re.sub(r'^\s*\$ ', '', line)
        line = re.sub(r'(^|\s)#.*$', '', line).strip()
        out += [part.strip() for part in re.split(r'&&|;|\|\|', line) if part.strip()]
    return out


@functools.lru_cache(maxsize=None)
def make_targets():
    with open(osp.join(ROOT, 'Makefile')) as f:
        return set(re.findall(r'^([\w-]+)\s*:(?!=)', f.read(), re.M))


@functools.lru_cache(maxsize=None)
def extras():
    parser = configparser.ConfigParser()
    parser.read(osp.join(ROOT, 'setup.cfg'))
    return set(parser['options.extras_require'])


def pip_problems(words):
    problems = []
    for word in words:
        if word.startswith('mmfocal'):
            problems.append(f'{word}: mmfocal is installed from the clone (pip install '
                            f"'.[extras]'), not from the package index")
        m = PIP_CLONE.match(word)
        if m and m.group(1):
            unknown = set(m.group(1)[1:-1].split(',')) - extras()
            if unknown:
                problems.append(f'{word}: setup.cfg has no extra {sorted(unknown)}')
    return problems


def command_problems(command: str, tools: set):
    """What does not work in one shell command; the tools/*.py it runs are added to
    ``tools`` (their ``--help`` is checked once)."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        return [f'{command}: {exc}']
    while words and re.match(r'^[A-Z_][A-Z0-9_]*=', words[0]):
        words = words[1:]  # VAR=value before the command
    if not words:
        return []
    program, args = osp.basename(words[0]), words[1:]
    if re.match(r'^python(3(\.\d+)?)?$', program):
        if args[:2] in (['-m', 'pip'], ):
            return pip_problems(args[2:])
        if not args or args[0] in ('-c', '-m'):
            return []
        if not osp.isfile(osp.join(ROOT, args[0])) and not TOOL_PATH.match(args[0]):
            return [f'{command}: no script {args[0]}']  # (tools/ paths: path_problems)
        if args[0].startswith('tools/') and args[0].endswith('.py') and \
                osp.isfile(osp.join(ROOT, args[0])):
            tools.add(args[0])
        return []
    if program == 'bash':
        script = next((a for a in args if not a.startswith('-')), None)
        if script and not osp.isfile(osp.join(ROOT, script)) and not TOOL_PATH.match(script):
            return [f'{command}: no script {script}']
        return []
    if program == 'make':
        targets = [a for a in args if not a.startswith('-') and '=' not in a]
        missing = [t for t in targets if t not in make_targets()]
        return [f'{command}: the Makefile has no target {t}' for t in missing]
    if program in ('pip', 'pip3'):
        return pip_problems(args)
    if program in OTHER_PROGRAMS or program.isupper():
        return []
    return [f'{command}: {program} is neither a project command nor a known program '
            '(add it to OTHER_PROGRAMS if the docs should show it)']


@functools.lru_cache(maxsize=None)
def last_checkpoint(config: str) -> str:
    """``epoch_N`` / ``iter_N``: the last checkpoint that training ``config`` writes, read
    from ``train_cfg`` (``max_epochs=N`` / ``max_iters=N``) of the config or of its bases in
    configs/ (the toolboxes' own bases set no schedule length; reading the files needs no
    toolbox installed)."""
    text = read(osp.join(ROOT, config))
    m = re.search(r'^train_cfg = dict\((?:.*?)\bmax_(epochs|iters)=(\w+)', text, re.M | re.S)
    if m:
        value = m.group(2)
        if not value.isdigit():
            value = re.search(rf'^{value} = (\d+)', text, re.M).group(1)
        return f'{m.group(1)[:-1]}_{value}'
    bases = re.search(r'^_base_ = (\[.*?\]|\S+)', text, re.M | re.S)
    for base in re.findall(r"'([^']+\.py)'", bases.group(1) if bases else '')[::-1]:
        toolbox = re.search(r'::_base_/schedules/schedule_(?:(\d+)k|(\d+)x)\.py$', base)
        if toolbox:  # mmseg's schedule_160k: 160000 iterations; mmdet's schedule_1x: 12 epochs
            return f'iter_{int(toolbox.group(1)) * 1000}' if toolbox.group(1) else \
                f'epoch_{12 * int(toolbox.group(2))}'
        found = None if '::' in base else last_checkpoint(
            osp.normpath(osp.join(osp.dirname(config), base)))
        if found:
            return found
    return None


@functools.lru_cache(maxsize=None)
def named_checkpoints():
    """The ``checkpoints/`` files that configs name."""
    names = set()
    for path in glob.glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True):
        names |= set(re.findall(r'checkpoints/[\w.-]+', read(path)))
    return names


def config_of(name: str):
    if name in DEMOS:
        return DEMOS[name]
    found = glob.glob(osp.join(ROOT, 'configs', '*', f'{name}.py'))
    return osp.relpath(found[0], ROOT) if found else None


def path_problems(text: str):
    problems = []
    for path in set(CONFIG_PATH.findall(text)) | set(TOOL_PATH.findall(text)):
        if not osp.isfile(osp.join(ROOT, path)):
            problems.append(f'{path}: no such file')
    for name, checkpoint in set(WORK_CHECKPOINT.findall(text)):
        config = config_of(name)
        if config is None:
            problems.append(f'work_dirs/{name}/{checkpoint}.pth: no config or demo {name}')
        elif last_checkpoint(config) != checkpoint:
            problems.append(f'work_dirs/{name}/{checkpoint}.pth: training {config} keeps '
                            f'{last_checkpoint(config)}.pth')
    for checkpoint in set(CHECKPOINT_ARG.findall(text)):
        if re.match(r'^(https?://|hf-hub:)', checkpoint) or checkpoint in named_checkpoints() \
                or not re.search(r'\.(pth|pdparams|safetensors|bin)$', checkpoint) \
                or osp.splitext(osp.basename(checkpoint))[0].isupper():
            continue
        m = WORK_CHECKPOINT.search(checkpoint)
        if not (m and m.group(0) == checkpoint):
            problems.append(f"checkpoint='{checkpoint}': nobody has this file; name a URL, an "
                            'hf-hub: checkpoint, one the demos write or one under checkpoints/ '
                            'that a config names')
    return problems


def page_problems(text: str, tools: set):
    problems = path_problems(text)
    for language, body in code_blocks(text):
        if language in SHELL:
            for command in shell_commands(body):
                problems += command_problems(command, tools)
    problems += [f'"{w}": say what the project does, not how it is developed'
                 for w in PROCESS_WORDS if w in text]
    return problems


@pytest.mark.parametrize('path', markdown_files(), ids=lambda p: osp.relpath(p, ROOT))
def test_commands_and_paths_work(path):
    problems = page_problems(read(path), set())
    assert not problems, '\n'.join(problems)


@pytest.mark.slow
def test_the_tools_the_docs_run_answer_help():
    tools = set()
    for path in markdown_files():
        page_problems(read(path), tools)
    assert 'tools/train.py' in tools
    failed = []
    for tool in sorted(tools):
        result = subprocess.run([sys.executable, tool, '--help'], cwd=ROOT,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0 or 'usage' not in result.stdout.lower():
            failed.append(f'{tool} --help: exit {result.returncode}\n{result.stderr[-800:]}')
    assert not failed, '\n'.join(failed)


def test_the_check_finds_each_kind_of_defect():
    page = '\n'.join([
        '```shell',
        "pip install 'mmfocal[hub]'",
        "pip install '.[nothing]'",
        'python tools/not_a_tool.py configs/detection/mask_rcnn_focalnet_t_1x.py',
        'make setup && make no-such-target',
        'bash tools/missing.sh',
        'frobnicate --all',
        'python demo.py',
        '```',
        'Load `work_dirs/demo_det/epoch_2.pth` or `configs/detection/missing.py`,',
        '`work_dirs/mask_rcnn_focalnet_t_1x/epoch_12.pth` (fine), '
        '`work_dirs/nobody/epoch_1.pth`.',
        '```python',
        "init_cfg=dict(type='Pretrained', checkpoint='focalnet_tiny_srf.pth')",
        "init_cfg=dict(type='Pretrained', checkpoint='hf-hub:timm/focalnet_tiny_srf.ms_in1k')",
        "init_cfg=dict(type='Pretrained', checkpoint='CHECKPOINT.pth')",
        '```',
        'The speed was measured here, in this round.',
    ])
    tools = set()
    problems = page_problems(page, tools)
    expected = ["mmfocal[hub]: mmfocal is installed from the clone",
                ".[nothing]: setup.cfg has no extra ['nothing']",
                'tools/not_a_tool.py: no such file',
                'the Makefile has no target no-such-target',
                'tools/missing.sh: no such file', 'frobnicate is neither',
                'work_dirs/demo_det/epoch_2.pth: training configs/detection/'
                'demo_mask_rcnn_focalnet.py keeps epoch_8.pth',
                'configs/detection/missing.py: no such file',
                'work_dirs/nobody/epoch_1.pth: no config or demo nobody',
                "checkpoint='focalnet_tiny_srf.pth': nobody has this file",
                'python demo.py: no script demo.py', '"measured here"', '"this round"']
    for part in expected:
        assert sum(part in p for p in problems) == 1, (part, problems)
    assert len(problems) == len(expected), problems
    assert tools == set()  # the script that does not exist is not run


def test_the_readme_demo_table_is_the_recorded_runs():
    """The README's demo table gives the figures and time that ``tools/demo.py --record``
    kept in docs/demo_results.json, and says when, at which commit and on which CPU."""
    with open(osp.join(ROOT, 'docs', 'demo_results.json')) as f:
        results = json.load(f)
    assert set(results) == {'det', 'seg', 'cls'}
    readme = read(osp.join(ROOT, 'README.md'))
    for task, command in (('det', 'make demo'), ('seg', 'make demo-seg'),
                          ('cls', 'make demo-cls')):
        run = results[task]
        row = next(line for line in readme.split('\n') if line.startswith(f'| `{command}` |'))
        for name, value in run['figures'].items():
            shown = f'{value:.3f}' if value <= 1 else f'{value:.2f}'
            assert f'{name} {shown}' in row, (name, shown, row)
        assert f"{run['seconds'] / 60:.1f} min" in row, row
        for fact in (run['date'], run['commit'], run['cpu'], f"{run['cores']} cores"):
            assert fact in readme, fact
