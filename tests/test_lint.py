"""The whole tree passes ruff's bug-finding rules (pyproject.toml [tool.ruff.lint]); functions stay short."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_finds_no_undefined_names_unused_imports_or_bugbear_patterns():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--output-format", "concise", "."], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_function_in_the_package_is_over_60_lines():
    """Each function readable on one page (issue 15): split a longer one into named steps."""
    import ast

    long = []
    for path in sorted((ROOT / "gpt_exp").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 60:
                long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})")
    assert not long, long
