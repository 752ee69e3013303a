"""The README's emulator example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


def test_readme_emulator_example_runs(task_runs_connections):
    section = README[README.index("## Testing your own DAGs") :]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    namespace["test_my_sensor"](task_runs_connections)


def test_readme_names_exactly_the_two_setup_commands():
    block = README[README.index("## The two commands") :].split("```")[1]
    assert [line.split("#")[0].strip() for line in block.splitlines()[1:] if line.strip()] == [
        "make demo",
        "make test",
    ]


def test_connection_recipes_keep_secrets_off_the_command_line():
    """Arguments are visible in /proc/*/cmdline and shell history: no secret is passed as one."""
    recipes = [block for block in re.findall(r"```bash\n(.*?)```", README, re.S) if "connections add" in block]
    assert recipes
    for block in recipes:
        assert "--conn-password" not in block, block
        assert "$(cat" not in block, block
