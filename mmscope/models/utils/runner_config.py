"""Backbone settings read from the config text of a runner checkpoint.

MMEngine's runner stores the whole config as Python text under
``meta['cfg']`` of every checkpoint it writes. The text is parsed, not run,
and only literal values are read from it.
"""
import ast
from typing import Dict, Optional, Sequence


def _dict_call_keywords(node: ast.AST) -> Optional[Dict[str, ast.AST]]:
    """Return the keyword nodes of a ``dict(...)`` call, or None."""
    is_dict_call = (isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == 'dict' and not node.args)
    if not is_dict_call:
        return None
    return {keyword.arg: keyword.value for keyword in node.keywords
            if keyword.arg is not None}


def _model_node(tree: ast.Module) -> Optional[ast.AST]:
    """Return the value node of the top-level ``model = ...`` assignment."""
    for statement in tree.body:
        if not isinstance(statement, ast.Assign):
            continue
        for target in statement.targets:
            if isinstance(target, ast.Name) and target.id == 'model':
                return statement.value
    return None


def _literal_settings(keywords: Dict[str, ast.AST]) -> Dict[str, object]:
    """Return the keywords whose values are Python literals, evaluated."""
    settings = {}
    for key, node in keywords.items():
        try:
            settings[key] = ast.literal_eval(node)
        except ValueError:
            # A nested dict(...) call or a name is not a literal.
            continue
    return settings


def stored_module_settings(cfg_text: str,
                           path: Sequence[str]) -> Optional[Dict[str, object]]:
    """Return the literal settings of a module of a stored config's model.

    Args:
        cfg_text: Config text, as MMEngine's runner stores it in a
            checkpoint's ``meta['cfg']``.
        path: Keys from ``model`` down to the module, such as
            ``['backbone']``; empty for the model itself.

    Returns:
        The module's settings whose values are literals (numbers, strings,
        tuples, lists), by name, or None when the text is not Python or has
        no such module.
    """
    try:
        tree = ast.parse(cfg_text)
    except SyntaxError:
        return None

    node = _model_node(tree)
    for key in path:
        keywords = _dict_call_keywords(node)
        if keywords is None or key not in keywords:
            return None
        node = keywords[key]

    keywords = _dict_call_keywords(node)
    if keywords is None:
        return None
    return _literal_settings(keywords)
