"""The package as a user installs it: a wheel built from this tree, installed (not editable)
into a fresh virtual environment, run from a folder that is not the checkout. The shipped model
and its operating point must come with it, and `edge sim`, `edge detect`, `edge evaluate` and
`edge run` must work from it."""

import json
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]


def sh(*args, cwd, timeout=300) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, f"{args}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(the fresh environment's bin folder, a working folder outside the checkout)."""
    root = tmp_path_factory.mktemp("install")
    sh(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
       root / "wheel", REPO, cwd=root)
    [wheel] = (root / "wheel").glob("edge_inspect-*.whl")
    env = root / "env"
    venv.create(env, with_pip=True)
    site = Path(sh(env / "bin" / "python", "-c", "import sysconfig; "
                   "print(sysconfig.get_paths()['purelib'])", cwd=root).stdout.strip())
    # The dependencies come from the test's own environment (no network in a test); its
    # editable install of this checkout does not, since a folder named in a .pth file is
    # put on the path without running the .pth files in it.
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    sh(env / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel,
       cwd=root)
    work = root / "work"
    work.mkdir()
    return env / "bin", work


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    bin_dir, work = installed
    where = sh(bin_dir / "python", "-c", "import edge, simulator, edge.config as c; "
               "print(edge.__file__, simulator.__file__, c.SHIPPED_MODEL)", cwd=work)
    paths = [Path(p) for p in where.stdout.split()]
    assert all(bin_dir.parent in p.parents for p in paths), paths
    assert paths[2].name == "lite0.int8.onnx" and paths[2].parent.name == "shipped"


def test_installed_edge_sim_detect_evaluate_and_run(installed):
    bin_dir, work = installed
    edge = bin_dir / "edge"
    sh(edge, "sim", "--parcels", "3", "--seed", "5", "--out", work / "set", "--quiet", cwd=work)
    images = sorted((work / "set" / "colour").glob("*.png"))
    assert len(images) == 3
    found = [json.loads(line) for line in sh(edge, "detect", "--json", *images,
                                             cwd=work).stdout.splitlines()]
    assert [Path(f["image"]).name for f in found] == [p.name for p in images]
    assert all(set(f) == {"image", "detections"} for f in found)
    table = sh(edge, "evaluate", "--data", work / "set" / "annotations.json", cwd=work).stdout
    assert "lite0.int8.onnx" in table and "mAP50" in table
    summary = work / "summary.json"
    run = sh(edge, "run", "--duration", "10", "--summary", summary, cwd=work, timeout=120)
    first = next(line for line in run.stdout.splitlines() if line.startswith("detector:"))
    assert "lite0.int8.onnx" in first and "thresholds: shipped with lite0-" in first, first
    result = json.loads(summary.read_text())
    assert result["detector"].startswith("lite0.int8.onnx")
    assert result["parcels"] >= 1 and result["undecided"] == 0, result


@pytest.mark.parametrize("absent", ["edge", "simulator", "models"])
def test_setup_py_runs_where_the_package_is_not_importable(absent):
    """pip runs setup.py in an isolated build environment that holds only the build
    requirements: none of this project's packages can be imported there."""
    probe = ("import runpy, sys\n"
             f"sys.modules[{absent!r}] = None\n"
             "sys.argv = ['setup.py', '--version']\n"
             "runpy.run_path('setup.py', run_name='__main__')\n")
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1][0].isdigit(), result.stdout
