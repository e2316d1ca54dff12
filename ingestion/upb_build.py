"""Build `ingestion/_otlp_upb` (the OTLP request's protobuf decoding in C, ingestion/_otlp_upb.c) — `make install` runs it.

It compiles against upb, protobuf's C runtime, from the source distribution of the `protobuf` release installed in
this virtualenv (fetched from the package index once, kept under .venv/upb-src). A C compiler and the Python headers
are needed. Without them the build is skipped with a warning and `ingestion.otlp` decodes with the protobuf package's
Python classes instead (the same spans, at about twice the request's CPU a span); with LLMOBSERVE_CI set (CI), a
failed build fails the install.

    .venv/bin/python -m ingestion.upb_build
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "ingestion" / "_otlp_upb.c"


def protobuf_source() -> Path:
    """The unpacked source of the installed protobuf release (its upb/, utf8_range/ and generated descriptor)."""
    release = version("protobuf")
    cache = Path(sys.prefix) / "upb-src"
    tree = cache / f"protobuf-{release}"
    if (tree / "upb").is_dir():
        return tree
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as download:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--no-binary", ":all:",
                        "--dest", download, f"protobuf=={release}"], check=True)
        (archive,) = Path(download).glob("protobuf-*.tar.gz")
        with tarfile.open(archive) as tar:
            tar.extractall(cache, filter="data")  # (3.11.4+; an older 3.11 fails here and keeps the Python decoder)
    return tree


def build() -> Path:
    from setuptools import Distribution, Extension
    from setuptools.command.build_ext import build_ext

    tree = protobuf_source()
    runtime = [path for path in (glob.glob(f"{tree}/upb/**/*.c", recursive=True) + glob.glob(f"{tree}/utf8_range/*.c")
                                 + glob.glob(f"{tree}/google/protobuf/*.c"))
               if "decode_fast" not in path]  # as protobuf's own setup.py builds it (fast table off)
    extension = Extension("ingestion._otlp_upb", [str(SOURCE.relative_to(ROOT)), *sorted(runtime)],
                          include_dirs=[str(tree), str(tree / "utf8_range")],
                          # upb's symbols stay private to this module, as in protobuf's own extension
                          extra_compile_args=["-fvisibility=hidden", "-std=c99", "-w"])
    command = build_ext(Distribution({"name": "llmobserve-otlp-upb", "ext_modules": [extension]}))
    command.inplace = True
    command.force = True  # `make` decides when to build: the sources or the install changed
    command.build_temp = str(Path(sys.prefix) / "upb-build")
    command.ensure_finalized()
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        command.run()
    finally:
        os.chdir(cwd)
    return ROOT / command.get_ext_filename("ingestion._otlp_upb")


def main() -> int:
    try:
        built = build()
    except Exception as exc:  # noqa: BLE001 - any failure: the Python decoder is used
        # An earlier build would no longer match its source: remove it rather than load it.
        (ROOT / "ingestion" / f"_otlp_upb{sysconfig.get_config_var('EXT_SUFFIX')}").unlink(missing_ok=True)
        print(f"ingestion/_otlp_upb was not built ({type(exc).__name__}: {exc}); OTLP protobuf bodies will be decoded "
              "with the protobuf package's Python classes (slower, same results)", file=sys.stderr)
        return 1 if os.environ.get("LLMOBSERVE_CI") else 0
    print(f"built {built.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
