"""Install and GPU-machine tooling checked without a GPU: wheel stripping, the scripts' syntax
and options."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from strip_wheel import dropped, strip_wheel  # noqa: E402


def test_stripped_wheel_keeps_the_rgb_variants_and_drops_the_rest(tmp_path):
    members = ["mitsuba/__init__.py", "mitsuba/libmitsuba.so", "mitsuba/plugins/path.so",
               "mitsuba/cuda_ad_rgb.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/llvm_ad_rgb.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/scalar_rgb.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/mitsuba_ext.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/cuda_ad_spectral_polarized.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/llvm_ad_mono.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/scalar_spectral.cpython-312-x86_64-linux-gnu.so",
               "mitsuba/include/mitsuba/core/fwd.h", "mitsuba/data/srgb.coeff",
               "mitsuba/data/ior/Ag.eta.spd", "mitsuba/math.pyi"]
    source, target = tmp_path / "in.whl", tmp_path / "out.whl"
    with zipfile.ZipFile(source, "w") as z:
        for name in members:
            z.writestr(name, name)
        z.writestr("mitsuba-3.9.1.dist-info/RECORD",
                   "\n".join(f"{m},sha256=x,1" for m in members) + "\n")
    kept, gone = strip_wheel(str(source), str(target))
    with zipfile.ZipFile(target) as z:
        names = set(z.namelist())
        record = z.read("mitsuba-3.9.1.dist-info/RECORD").decode()
    expected = {m for m in members if not dropped(m)}
    assert names == expected | {"mitsuba-3.9.1.dist-info/RECORD"}
    assert {"mitsuba/cuda_ad_rgb.cpython-312-x86_64-linux-gnu.so",
            "mitsuba/llvm_ad_rgb.cpython-312-x86_64-linux-gnu.so",
            "mitsuba/mitsuba_ext.cpython-312-x86_64-linux-gnu.so",
            "mitsuba/plugins/path.so", "mitsuba/data/ior/Ag.eta.spd"} <= names
    assert not any("spectral" in n or "mono" in n or n.endswith((".h", ".pyi", "srgb.coeff"))
                   for n in names)
    assert (kept, gone) == (len(expected) + 1, len(members) - len(expected))
    assert sorted(line.split(",")[0] for line in record.splitlines()) == sorted(expected)


def test_device_scripts_parse():
    for script in ("scripts/device_check.sh", "scripts/device_wheels.sh"):
        subprocess.run(["bash", "-n", script], cwd=ROOT, check=True)


def test_setup_refuses_an_unknown_option_before_installing_anything():
    result = subprocess.run(["bash", "scripts/setup.sh", "--pytorch"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.strip() == "setup: unknown option --pytorch (use --dev, --pytorch3d)"
