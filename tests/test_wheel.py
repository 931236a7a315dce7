"""The wheel built from this checkout works on its own: installed into a fresh environment (not
the checkout, which stays untouched), its ``jetfm`` runs a tiny preset from a folder outside
the repository and finds the presets inside the installed package.

The fresh environment is a ``venv --without-pip`` whose only link to the test's environment is
a ``.pth`` line naming that environment's site-packages (for the dependencies: torch,
pythia8mc, ...). Plain path lines of a ``.pth`` do not run the ``.pth`` files of the folder
they add, so the checkout's editable install (an import hook installed by such a file) stays
off, and ``import jetfm`` finds the wheel's copy.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PRESETS = sorted(p.name for p in (REPO / "jetfm" / "configs").glob("*.yaml"))


def run(argv: list[str], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)


def check(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, f"{result.args}\n{result.stdout[-3000:]}\n" \
                                   f"{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_installed_wheel_runs_a_preset_outside_the_checkout(tmp_path):
    pytest.importorskip("setuptools", minversion="68")  # the build backend (dev extra)
    # build from a copy of the sources, so that the build leaves nothing in the checkout
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "jetfm", src / "jetfm",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    check(run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
               "--no-index", "-q", "-w", str(tmp_path / "dist"), str(src)], tmp_path))
    (wheel,) = (tmp_path / "dist").glob("jetfm-*.whl")
    shipped = sorted(Path(n).name for n in zipfile.ZipFile(wheel).namelist()
                     if n.startswith("jetfm/configs/") and n.endswith(".yaml"))
    assert shipped == PRESETS and len(PRESETS) >= 20

    env = tmp_path / "env"
    check(run([sys.executable, "-m", "venv", "--without-pip", str(env)], tmp_path))
    python = env / "bin" / "python"
    site = check(run([str(python), "-c", "import sysconfig; "
                      "print(sysconfig.get_paths()['purelib'])"], tmp_path)).strip()
    deps = dict.fromkeys(sysconfig.get_paths()[k] for k in ("purelib", "platlib"))
    (Path(site) / "jetfm_test_deps.pth").write_text("".join(f"{d}\n" for d in deps))
    check(run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
               "--no-index", "-q", str(wheel)], tmp_path))

    work = tmp_path / "work"  # outside the repository, with no configs of its own
    work.mkdir()
    where = check(run([str(python), "-c", "import jetfm, jetfm.configs as c; "
                       "print(jetfm.__file__); print(c.preset('omnijet_cpu'))"], work))
    module, omnijet_cpu = (Path(line) for line in where.split())
    assert module.is_relative_to(env) and not module.is_relative_to(REPO)
    assert omnijet_cpu == module.parent / "configs" / "omnijet_cpu.yaml"

    # the default --config of every command that has one is a file of the installed package
    defaults = check(run([str(python), "-c", "from jetfm.cli import build_parser; "
                          "parse = build_parser().parse_args; "
                          "print(*(parse(a).config for a in (['demo'], ['omnijet'], "
                          "['tokenizer', 'j.root'], ['pretrain', 't.parquet', '--tokenizer', "
                          "'t'], ['finetune', 'j.root'], ['study', 'omnilearn'], "
                          "['benchmark', 'tagging'], ['evolution', '--config', 'evolution_cpu']"
                          ")))"], work)).split()
    assert len(defaults) == 8
    for path in map(Path, defaults):
        assert path.parent == module.parent / "configs" and path.is_file(), path
    # a tiny preset by name, made smaller still by overrides, runs to the end
    overrides = ["n_pretrain=12", "sizes=[6]", "n_test=6", "n_generate=4", "sampler_steps=2",
                 "n_bootstrap=2"]
    out = check(run([str(env / "bin" / "jetfm"), "study", "omnilearn", "--config",
                     "omnilearn_transfer_tiny", "--out", "run", *overrides], work))
    assert "config -> run/config.resolved.yaml" in out
    resolved = yaml.safe_load((work / "run" / "config.resolved.yaml").read_text())
    assert resolved["sizes"] == [6] and resolved["n_pretrain"] == 12
    assert (work / "run" / "table.md").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["run"]
