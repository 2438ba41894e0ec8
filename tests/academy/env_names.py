"""Which environment variables the project really reads, found by parsing.

The names are derived from ``academy/settings.py`` itself (calls such as
``os.environ.get("X")``, ``os.environ["X"]`` and helpers like ``_env_bool("X",
...)``), so a test built on them cannot drift from the settings.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from botocore.credentials import EnvProvider

BASE_DIR = Path(__file__).resolve().parents[2]
SETTINGS_PATH = BASE_DIR / "academy" / "settings.py"
# The one place that reads the environment, and the scaling app's typed view of it.
READING_MODULES = (SETTINGS_PATH, BASE_DIR / "scaling" / "conf.py")
ENV_EXAMPLE_PATH = BASE_DIR / ".env.example"

_ENV_LINE_RE = re.compile(r"^([A-Z][A-Z0-9_]*)=", re.MULTILINE)


def _is_os_environ(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and node.attr == "environ"
        and isinstance(node.value, ast.Name)
        and node.value.id == "os"
    )


def _environ_read_arg(node: ast.AST) -> ast.expr | None:
    """The name argument of ``os.environ.get(x)``, ``os.getenv(x)`` or ``os.environ[x]``."""
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "get" and _is_os_environ(func.value):
            return node.args[0]
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "getenv"
            and isinstance(func.value, ast.Name)
            and func.value.id == "os"
        ):
            return node.args[0]
    if isinstance(node, ast.Subscript) and _is_os_environ(node.value):
        return node.slice
    return None


def _env_helpers(tree: ast.Module) -> set[str]:
    """Module-level functions that read the environment variable named by their first argument."""
    helpers = set()
    for function in tree.body:
        if not isinstance(function, ast.FunctionDef) or not function.args.args:
            continue
        parameter = function.args.args[0].arg
        for node in ast.walk(function):
            arg = _environ_read_arg(node)
            if isinstance(arg, ast.Name) and arg.id == parameter:
                helpers.add(function.name)
    return helpers


def settings_env_names(paths: tuple[Path, ...] = READING_MODULES) -> set[str]:
    names = set()
    for path in paths:
        names |= _module_env_names(path)
    return names


def _module_env_names(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    helpers = _env_helpers(tree)
    names = set()
    for node in ast.walk(tree):
        arg = _environ_read_arg(node)
        if (
            arg is None
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in helpers
            and node.args
        ):
            arg = node.args[0]
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            names.add(arg.value)
    return names


def boto3_credential_env_names() -> set[str]:
    """Credentials boto3 reads from the environment by itself (settings never see them)."""
    return {EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, *EnvProvider.TOKENS}


def env_example_names(path: Path = ENV_EXAMPLE_PATH) -> set[str]:
    return set(_ENV_LINE_RE.findall(path.read_text()))
