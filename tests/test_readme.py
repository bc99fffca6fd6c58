"""The README's API script runs as written, from a folder outside the checkout (the package is
installed: requirements.txt installs it editable)."""

import re
import subprocess
import sys

from helpers import ROOT


def test_the_readme_api_script_runs(tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## API"):readme.index("## Running experiments")]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300, env={"HOME": str(tmp_path),
                                            "RAY_AUTH_MODE": "disabled", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["0", "1", "2", "3", "4"]
    checkpoint = lines[-1].strip()
    modules = sorted(p.name for p in (tmp_path / checkpoint / "learner_group" / "learner" / "rl_module").iterdir() if p.is_dir())
    assert modules == ["p0", "p1"]
