"""Generated documentation blocks (swin_dense/markdown_blocks.py): only the lines between the markers change."""
import pytest

from swin_dense.markdown_blocks import replace_block, rewrite_block

BEGIN, END = '<!-- plan:begin', '<!-- plan:end -->'
BEGIN_LINE = BEGIN + ' (written by a tool) -->'


def test_replaces_only_between_the_markers_and_again():
    doc = f'# Title\n\ntext before\n\n{BEGIN_LINE}\nold plan\n| old | table |\n{END}\n\ntext after\n'
    once = replace_block(doc, BEGIN, END, 'new plan\n')
    assert once == f'# Title\n\ntext before\n\n{BEGIN_LINE}\nnew plan\n{END}\n\ntext after\n'
    assert replace_block(once, BEGIN, END, 'new plan') == once
    assert replace_block(f'{BEGIN_LINE}\n{END}', BEGIN, END, 'p') == f'{BEGIN_LINE}\np\n{END}'


@pytest.mark.parametrize('broken', ['no markers', f'{END}\n{BEGIN_LINE}\n', f'{BEGIN_LINE}\nno end'])
def test_missing_or_misordered_markers_are_refused_and_the_file_kept(broken, tmp_path):
    with pytest.raises(ValueError, match='no generated block'):
        replace_block(broken, BEGIN, END, 'p')
    doc = tmp_path / 'doc.md'
    doc.write_text(broken, encoding='utf-8')
    with pytest.raises(ValueError):
        rewrite_block(str(doc), BEGIN, END, 'p')
    assert doc.read_text(encoding='utf-8') == broken
