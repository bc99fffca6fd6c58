"""The package as a user installs it: the extension works without the project's envs and app,
the wheel declares what each part needs, and README's API script runs from the installed wheel
in a fresh venv, from a folder outside the checkout."""

import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile

import pytest

from helpers import ROOT

#: What the wheel is built from.
PACKAGE_FILES = ("pyproject.toml", "README.md", "rllib_society", "experiments", "envs")
CLEAN_ENV = {"RAY_AUTH_MODE": "disabled", "PATH": "/usr/bin:/bin"}


def run_python(python, code: str, cwd, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-c", code], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env={**CLEAN_ENV, "HOME": str(cwd)})


def test_the_extension_alone_needs_neither_the_envs_nor_the_app(tmp_path):
    done = run_python(sys.executable, textwrap.dedent("""
        import sys
        from rllib_society import AuctionEnv, FieldError, SocietyEnv
        env = AuctionEnv({"env": "FrozenLake-v1", "env_config": {"is_slippery": False}})
        env.reset(seed=0)
        SocietyEnv({"env": "CliffWalking-v1"}).reset(seed=0)
        try:
            AuctionEnv({})
        except FieldError as error:
            print(error)
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("envs", "experiments")))
    """), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    error, imported = done.stdout.strip().splitlines()
    assert error.startswith("env=None is not allowed; env must be a gymnasium id")
    assert imported == "[]"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel `python -m build` makes of this checkout (without build isolation: offline),
    built from a copy, since setuptools writes its build folders into the source tree."""
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("dist")
    skip = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in PACKAGE_FILES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, source / name, **({"ignore": skip} if (ROOT / name).is_dir() else {}))
    done = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    (path,) = out.glob("rllib_society-*.whl")
    return path


def wheel_requirements(path) -> list[str]:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = archive.read(name).decode()
    return re.findall(r"^Requires-Dist: (.*)$", metadata, re.M)


@pytest.mark.integration
def test_the_wheel_declares_a_torch_range_and_what_the_app_and_envs_need(wheel):
    requirements = wheel_requirements(wheel)
    core = [r for r in requirements if "extra ==" not in r]
    torch = next(r for r in core if r.startswith("torch"))
    assert "==" not in torch and ">=" in torch, torch
    assert any(r.startswith("ray[rllib]") for r in core)
    extra = lambda name: [r.split(";")[0] for r in requirements if f'extra == "{name}"' in r]  # noqa: E731
    assert any(r.startswith("pydantic") for r in extra("experiments"))
    assert any(r.startswith("rllib-society[envs]") for r in extra("experiments"))
    assert {"minigrid", "scikit-learn"} <= {re.split(r"[<>=!~ ]", r)[0] for r in extra("envs")}
    with zipfile.ZipFile(wheel) as archive:
        packages = {name.split("/")[0] for name in archive.namelist() if name.endswith(".py")}
    assert packages == {"rllib_society", "experiments", "envs"}


@pytest.mark.integration
def test_the_readme_api_script_runs_from_the_installed_wheel_outside_the_checkout(wheel, tmp_path):
    """A fresh venv holds only the wheel; this test's own site-packages stand in for the
    dependencies (no downloads at test time), appended after the venv's own, so the checkout is
    not on the path and `rllib_society` comes from the wheel."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    install = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    site = run_python(python, "import sysconfig; print(sysconfig.get_paths()['purelib'])", tmp_path).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (venv / site.split(str(venv) + "/")[1] / "dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")

    where = run_python(python, "import rllib_society; print(rllib_society.__file__)", tmp_path)
    assert where.stdout.strip().startswith(str(venv)), where.stdout + where.stderr
    missing = run_python(python, textwrap.dedent("""
        from importlib.metadata import requires, version
        from packaging.requirements import Requirement
        for line in requires("rllib-society"):
            need = Requirement(line)
            if need.marker is None and not need.specifier.contains(version(need.name), prereleases=True):
                print(need)
    """), tmp_path)
    assert missing.returncode == 0 and missing.stdout == "", missing.stdout + missing.stderr

    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## API"):readme.index("## Running experiments")]
    script = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    done = run_python(python, script, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:5]] == ["0", "1", "2", "3", "4"]
    checkpoint = lines[-1].strip()
    modules = sorted(p.name for p in (tmp_path / checkpoint / "learner_group" / "learner" / "rl_module").iterdir()
                     if p.is_dir())
    assert modules == ["p0", "p1"]
