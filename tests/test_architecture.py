"""The package's import arrows point one way (docs/architecture.md): a test of every import, including
those inside functions, so that a lazy import cannot hide a cycle or an arrow that points up."""
import ast
import os
from typing import Dict, List, Set, Tuple

PACKAGE = 'swin_dense'
ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), PACKAGE)

# (room, level): a module may import its own room and rooms of a lower level, never a higher one.
ROOMS: List[Tuple[str, int]] = [
    ('swin_dense.arch', 0),
    ('swin_dense.layers', 0),
    ('swin_dense.markdown_blocks', 0),
    ('swin_dense.checkpoint', 1),
    ('swin_dense.models', 2),
    ('swin_dense.engine', 3),
    ('swin_dense.datasets', 3),
    ('swin_dense.sample_data', 3),
    ('swin_dense.inference', 4),
    ('swin_dense.benchmark', 4),
    ('swin_dense.deploy', 4),
    ('swin_dense.cli', 4),
    ('swin_dense.runtime', 4),
    ('swin_dense', 3),  # the package's __init__: registers the backbone and the optimizer constructor
]
# Leaves import nothing else of the package (as timm/layers): the numerics, the arch table and the
# generated-docs blocks.
LEAVES = ('swin_dense.arch', 'swin_dense.layers', 'swin_dense.markdown_blocks')


def room_of(module: str) -> Tuple[str, int]:
    for room, level in ROOMS:
        if module == room or module.startswith(room + '.'):
            return room, level
    raise AssertionError(f'{module} is in no room of tests/test_architecture.py: add it there and to '
                         'docs/architecture.md')


def modules() -> Dict[str, str]:
    """{dotted module name: path} of every module of the package."""
    found = {}
    for folder, _, files in os.walk(ROOT):
        for name in files:
            if name.endswith('.py'):
                rel = os.path.relpath(os.path.join(folder, name), os.path.dirname(ROOT))[:-3].split(os.sep)
                if rel[-1] == '__init__':
                    rel = rel[:-1]
                found['.'.join(rel)] = os.path.join(folder, name)
    return found


def imports_of(module: str, path: str, known: Set[str]) -> Set[str]:
    """The package modules ``module`` imports anywhere in its file (top level or inside functions)."""
    is_package = path.endswith('__init__.py')
    package = module if is_package else module.rsplit('.', 1)[0]
    targets = set()
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')
                base = base[:len(base) - node.level + 1]
                source = '.'.join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ''
            names = [f'{source}.{alias.name}' for alias in node.names] + [source]
        else:
            continue
        for name in names:
            if name.split('.')[0] != PACKAGE:
                continue
            while name not in known:  # `from x import function` names the module x
                name = name.rsplit('.', 1)[0]
            if name != module:
                targets.add(name)
    return targets


def graph() -> Dict[str, Set[str]]:
    found = modules()
    return {module: imports_of(module, path, set(found)) for module, path in found.items()}


def test_every_arrow_points_down_and_leaves_import_nothing():
    wrong = []
    for module, targets in sorted(graph().items()):
        room, level = room_of(module)
        for target in sorted(targets):
            target_room, target_level = room_of(target)
            if room in LEAVES and target_room != room:
                wrong.append(f'{module} -> {target} (a leaf imports nothing else of the package)')
            elif target_level > level or (target_level == level and target_room != room and level == 0):
                wrong.append(f'{module} (level {level}) -> {target} (level {target_level})')
    assert not wrong, 'imports that point the wrong way (docs/architecture.md):\n' + '\n'.join(wrong)


def test_no_import_cycle():
    edges = graph()
    state: Dict[str, int] = {}  # 1 = on the current path, 2 = done
    cycles = []

    def visit(module: str, path: List[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            if state.get(target) == 1:
                cycles.append(' -> '.join(path[path.index(target):] + [module, target]) if target in path
                              else f'{module} -> {target}')
            elif target not in state:
                visit(target, path + [module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])
    # a package's __init__ importing its own submodules is not a cycle of behaviour: leave those out
    real = [c for c in cycles if not all(a.startswith(b + '.') or b.startswith(a + '.') or a == b
                                         for a, b in zip(c.split(' -> '), c.split(' -> ')[1:]))]
    assert not real, 'import cycles:\n' + '\n'.join(real)


def test_the_walk_sees_imports_inside_functions(tmp_path):
    """The checker itself: an import inside a function counts like one at the top."""
    path = tmp_path / 'mod.py'
    path.write_text('def f():\n    from ..models.backbones import swinv2\n')
    known = {'swin_dense.checkpoint.mod', 'swin_dense.models.backbones.swinv2', 'swin_dense.models.backbones',
             'swin_dense.models', 'swin_dense'}
    assert imports_of('swin_dense.checkpoint.mod', str(path), known) == {'swin_dense.models.backbones',
                                                                         'swin_dense.models.backbones.swinv2'}
