"""The documentation: README.md and docs/**/*.md.

Every relative link and image resolves to a file of the repository, and every ``#anchor``
to a heading of the page it names, slugged as GitHub and MyST (``myst_heading_anchors`` in
docs/en/conf.py) slug headings: lowercase, punctuation removed, spaces to hyphens. The
README stays a landing page of at most 300 lines, every page is in the Sphinx table of
contents and every picture of docs/images is shown somewhere. The Sphinx build itself is
``make docs``; ``test_sphinx_build`` runs it too when sphinx and myst-parser are installed.
"""
import glob
import os
import os.path as osp
import re
import subprocess
import sys
from urllib.parse import unquote

import pytest

from _helpers import ROOT
DOCS = osp.join(ROOT, 'docs')
SOURCE = osp.join(DOCS, 'en')
README_MAX_LINES = 300

FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
HEADING = re.compile(r'^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$')
CODE_SPAN = re.compile(r'(`+)(.+?)\1')
# [text](target "title") and ![alt](target); link texts may hold one level of brackets.
INLINE_LINK = re.compile(r'!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]'
                         r'\(\s*(<[^>]*>|[^)\s]*)(?:\s+"[^"]*")?\s*\)')
REFERENCE = re.compile(r'^ {0,3}\[[^\]]+\]:\s*(\S+)')
HTML_LINK = re.compile(r'<(?:a|img)\b[^>]*?\b(?:href|src)="([^"]*)"', re.IGNORECASE)
SCHEME = re.compile(r'^[a-zA-Z][a-zA-Z0-9+.-]*:')
SLUG_REMOVED = re.compile(r'[^\w\u4e00-\u9fff\- ]')


def heading_anchor_depth() -> int:
    """``myst_heading_anchors`` of docs/en/conf.py: headings down to this level get anchors."""
    with open(osp.join(SOURCE, 'conf.py')) as f:
        return int(re.search(r'^myst_heading_anchors\s*=\s*(\d+)', f.read(), re.M).group(1))


def prose_lines(text: str):
    """(line number, line) of the lines outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.split('\n'), 1):
        m = FENCE.match(line)
        if fence is None:
            if m:
                fence = m.group(1)
                continue
            yield number, line
        elif m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and \
                not line.strip()[len(m.group(1)):].strip():
            fence = None


def heading_text(markdown: str) -> str:
    """The text of a heading as rendered: code spans without backticks, links by their text."""
    text = CODE_SPAN.sub(lambda m: m.group(2).strip(), markdown)
    return re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', text)


def slugify(title: str) -> str:
    """GitHub's (and MyST's default) anchor of a heading: lowercase, characters other than
    word characters, hyphens and spaces removed, spaces to hyphens."""
    return SLUG_REMOVED.sub('', heading_text(title).lower().replace(' ', '-'))


def headings(text: str):
    """[(level, title, slug)] of a markdown text, in order."""
    out = []
    for _, line in prose_lines(text):
        m = HEADING.match(line)
        if m:
            out.append((len(m.group(1)), m.group(2), slugify(m.group(2))))
    return out


def links(text: str):
    """[(line number, target)] of the inline links, images, reference definitions and HTML
    ``href``/``src`` outside code blocks and code spans."""
    out = []
    for number, line in prose_lines(text):
        line = CODE_SPAN.sub('', line)
        targets = [m.group(1) for m in INLINE_LINK.finditer(line)]
        targets += [m.group(1) for m in REFERENCE.finditer(line)]
        targets += [m.group(1) for m in HTML_LINK.finditer(line)]
        out += [(number, t[1:-1] if t.startswith('<') else t) for t in targets]
    return out


def anchor_problems(text: str):
    """Headings whose slug repeats an earlier one (GitHub and MyST would suffix it)."""
    seen, problems = set(), []
    for _, title, slug in headings(text):
        if slug in seen:
            problems.append(f'heading "{title}": its anchor #{slug} repeats an earlier one')
        seen.add(slug)
    return problems


def link_problems(path: str, text: str, root: str = ROOT, depth: int = None):
    """What does not resolve among the links of ``text``, the content of the file ``path``:
    missing files, links out of ``root``, anchors that match no heading of their page down
    to level ``depth`` (default: docs/en/conf.py's ``myst_heading_anchors``)."""
    depth = heading_anchor_depth() if depth is None else depth
    problems = []
    for number, target in links(text):
        where = f'{osp.relpath(path, root)}:{number}: {target}'
        if not target or SCHEME.match(target) or target.startswith('//'):
            continue
        file_part, _, anchor = target.partition('#')
        file_part = unquote(file_part)
        if file_part.startswith('/'):
            problems.append(f'{where}: absolute path (links must be relative)')
            continue
        dest = osp.normpath(osp.join(osp.dirname(path), file_part)) if file_part else path
        if osp.relpath(dest, root).startswith('..'):
            problems.append(f'{where}: outside the repository')
            continue
        if not osp.exists(dest):
            problems.append(f'{where}: no such file')
            continue
        if not anchor:
            continue
        if not dest.endswith('.md'):
            problems.append(f'{where}: an anchor into a file that is not markdown')
            continue
        if dest == path:
            page = text
        else:
            with open(dest, encoding='utf-8') as f:
                page = f.read()
        slugs = {slug: level for level, _, slug in headings(page)}
        if anchor not in slugs:
            problems.append(f'{where}: no heading of {osp.relpath(dest, root)} has the anchor '
                            f'#{anchor}')
        elif slugs[anchor] > depth:
            problems.append(f'{where}: the heading of #{anchor} is at level {slugs[anchor]}; '
                            f'Sphinx makes anchors down to level {depth} '
                            '(myst_heading_anchors)')
    return problems


def markdown_files():
    files = [osp.join(ROOT, 'README.md')]
    files += sorted(glob.glob(osp.join(DOCS, '**', '*.md'), recursive=True))
    return [f for f in files if '_build' not in osp.relpath(f, ROOT).split(os.sep)]


def read(path: str) -> str:
    with open(path, encoding='utf-8') as f:
        return f.read()


@pytest.mark.parametrize('path', markdown_files(), ids=lambda p: osp.relpath(p, ROOT))
def test_links_and_anchors_resolve(path):
    text = read(path)
    problems = link_problems(path, text) + anchor_problems(text)
    assert not problems, '\n'.join(problems)


def test_readme_is_a_landing_page():
    lines = read(osp.join(ROOT, 'README.md')).split('\n')
    if lines and lines[-1] == '':
        lines.pop()
    assert len(lines) <= README_MAX_LINES, (
        f'README.md has {len(lines)} lines; keep it within {README_MAX_LINES} and move '
        'details to docs/en')


@pytest.mark.parametrize('title, slug', [
    ('Speed and memory', 'speed-and-memory'),
    ("Authors' checkpoints", 'authors-checkpoints'),
    ('First run: the demo', 'first-run-the-demo'),
    ('Large-model systems: DINO and Mask2Former with FocalNet-L/XL/H',
     'large-model-systems-dino-and-mask2former-with-focalnet-lxlh'),
    ('The `FocalTransformer` backbone', 'the-focaltransformer-backbone'),
    ('Using `init_cfg` (FocalNet, 2 levels)', 'using-init_cfg-focalnet-2-levels'),
    ('See [the zoo](model_zoo.md)', 'see-the-zoo'),
])
def test_slugify(title, slug):
    assert slugify(title) == slug


def test_link_check_finds_broken_links(tmp_path):
    """The checker itself: a page with good and broken links of every kind."""
    (tmp_path / 'docs').mkdir()
    (tmp_path / 'docs' / 'picture.png').write_bytes(b'')
    (tmp_path / 'docs' / 'guide.md').write_text(
        '# Guide\n\n## Speed and memory\n\n#### Deep heading\n\n## Speed and memory\n')
    page = tmp_path / 'README.md'
    text = '\n'.join([
        '# Title',
        '',
        'Good: [guide](docs/guide.md), [speed](docs/guide.md#speed-and-memory),',
        '[here](#title), ![picture](docs/picture.png), [web](https://example.com/x#y).',
        'Broken: [gone](docs/missing.md), [anchor](docs/guide.md#speed), [self](#nothing),',
        '![picture](docs/missing.png), [deep](docs/guide.md#deep-heading),',
        '[out](../elsewhere.md), [abs](/etc/passwd),'
        ' [anchor in a picture](docs/picture.png#x).',
        '',
        '[ref]: docs/nowhere.md',
        '',
        'Not links: `[code](docs/missing.md)`',
        '',
        '```markdown',
        '[in a code block](docs/missing.md)',
        '```',
    ])
    page.write_text(text)
    problems = link_problems(str(page), text, root=str(tmp_path), depth=3)
    found = [p.split(': ', 1)[1] for p in problems]
    assert found == [
        'docs/missing.md: no such file',
        'docs/guide.md#speed: no heading of docs/guide.md has the anchor #speed',
        '#nothing: no heading of README.md has the anchor #nothing',
        'docs/missing.png: no such file',
        'docs/guide.md#deep-heading: the heading of #deep-heading is at level 4; Sphinx '
        'makes anchors down to level 3 (myst_heading_anchors)',
        '../elsewhere.md: outside the repository',
        '/etc/passwd: absolute path (links must be relative)',
        'docs/picture.png#x: an anchor into a file that is not markdown',
        'docs/nowhere.md: no such file',
    ], '\n'.join(problems)
    assert [p.split(':')[1] for p in problems] == ['5', '5', '5', '6', '6', '7', '7', '7', '9']
    assert anchor_problems((tmp_path / 'docs' / 'guide.md').read_text()) == [
        'heading "Speed and memory": its anchor #speed-and-memory repeats an earlier one']


def test_slugs_match_myst():
    """Our slugs are the anchors MyST gives the headings of these pages."""
    markdown_it = pytest.importorskip('markdown_it')
    slugs = pytest.importorskip('myst_parser.slugs')
    parser = markdown_it.MarkdownIt('commonmark')
    for path in markdown_files():
        tokens = parser.parse(read(path))
        titles = [''.join(child.content for child in inline.children
                          if child.type in ('text', 'code_inline'))
                  for opening, inline in zip(tokens, tokens[1:])
                  if opening.type == 'heading_open']
        theirs = [slugs.github_slugify(title) for title in titles]
        assert [slug for _, _, slug in headings(read(path))] == theirs, path


def test_every_page_in_the_toctree():
    index = read(osp.join(SOURCE, 'index.md'))
    listed = set(re.findall(r'^([\w/]+)$', '\n'.join(
        block for block in re.findall(r'```\{toctree\}(.*?)```', index, re.S)), re.M))
    pages = {osp.splitext(osp.relpath(p, SOURCE))[0]
             for p in glob.glob(osp.join(SOURCE, '**', '*.md'), recursive=True)} - {'index'}
    assert pages - listed == set(), 'pages missing from the toctree of docs/en/index.md'
    assert listed - pages == set(), 'toctree entries without a page'


def test_every_picture_is_shown():
    shown = set()
    for path in markdown_files():
        for _, target in links(read(path)):
            if not SCHEME.match(target):
                target = unquote(target.split('#')[0])
                shown.add(osp.normpath(osp.join(osp.dirname(path), target)))
    pictures = glob.glob(osp.join(DOCS, 'images', '*'))
    assert pictures and not [p for p in pictures if p not in shown]


@pytest.mark.slow
def test_sphinx_build(tmp_path):
    """``make docs``: the HTML build with warnings as errors."""
    pytest.importorskip('sphinx')
    pytest.importorskip('myst_parser')
    result = subprocess.run(
        [sys.executable, '-m', 'sphinx', '-W', '--keep-going', '-q', '-b', 'html', SOURCE,
         str(tmp_path / 'html')], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
