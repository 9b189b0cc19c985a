"""Build the cyloss extensions.

Environment switches (printed at build time, never silent):

``CYLOSS_OPENMP=auto|required|off``
    ``auto`` (default) compiles with OpenMP when the compiler supports it and
    says so when it does not; ``required`` fails the build without OpenMP (wheel
    builds use this); ``off`` builds serial loops.
``CYLOSS_DEBUG=1``
    Turns Cython bounds checking and wraparound checks on and builds with ``-O0 -g``,
    for hunting crashes.
"""

import os
import shlex
import sys
import sysconfig
import tempfile
import textwrap

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

OPENMP_MODES = ("auto", "required", "off")


def _log(msg):
    print(f"cyloss build: {msg}", file=sys.stderr, flush=True)


def _openmp_flags(compiler_type, cc):
    """Return (compile_args, link_args) for OpenMP with this compiler."""
    if compiler_type == "msvc":
        # Plain /openmp (OpenMP 2.0): /openmp:llvm has its own runtime.
        return ["/openmp"], []
    if sys.platform == "darwin":
        # Apple clang has no -fopenmp driver flag; libomp comes from the build step, found
        # through CPPFLAGS (-I.../include) and LDFLAGS (-L.../lib). setuptools adds LDFLAGS
        # to the extension link but not to link_executable, which the OpenMP probe uses,
        # so the probe could never find -lomp: repeat LDFLAGS here (harmless twice).
        return ["-Xpreprocessor", "-fopenmp"], shlex.split(os.environ.get("LDFLAGS", "")) + [
            "-lomp"
        ]
    return ["-fopenmp"], ["-fopenmp"]


def _compiles_with(compiler, compile_args, link_args):
    """Try to compile and link a small OpenMP program with these flags."""
    src = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
        """
    )
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "omp_check.c")
        with open(path, "w") as f:
            f.write(src)
        try:
            objs = compiler.compile([path], output_dir=tmp, extra_postargs=compile_args)
            compiler.link_executable(
                objs, os.path.join(tmp, "omp_check"), extra_postargs=link_args
            )
        except Exception as exc:  # any compiler or linker failure means "no OpenMP"
            return False, str(exc)
    return True, ""


class BuildExt(build_ext):
    def build_extensions(self):
        mode = os.environ.get("CYLOSS_OPENMP", "auto").strip().lower() or "auto"
        if mode not in OPENMP_MODES:
            raise SystemExit(
                f"CYLOSS_OPENMP must be one of {OPENMP_MODES}, got {mode!r}"
            )
        debug = os.environ.get("CYLOSS_DEBUG", "0") not in ("", "0")
        ctype = self.compiler.compiler_type
        cc = sysconfig.get_config_var("CC") or ctype

        if ctype == "msvc":
            base = ["/O2" if not debug else "/Od", "/fp:precise"]
        else:
            # -fno-math-errno lets log/exp/sqrt inline and vectorise; never -ffast-math:
            # it deletes isnan/isinf checks and breaks the NaN contract.
            # -ffp-contract=off: no silent a*b+c -> fma. With it, the AVX2 and AVX-512 paths and
            # the baseline code round differently, so results would depend on the CPU and
            # on which path (contiguous or strided) a layout takes.
            base = (["-O0", "-g"] if debug else ["-O3"]) + [
                "-fno-math-errno",
                "-fno-trapping-math",
                "-ffp-contract=off",
            ]
            if os.environ.get("CYLOSS_STRIP", "0") not in ("", "0"):
                base.append("-g0")

        omp_compile, omp_link = [], []
        if mode != "off":
            omp_compile, omp_link = _openmp_flags(ctype, cc)
            ok, err = _compiles_with(self.compiler, omp_compile, omp_link)
            if not ok:
                if mode == "required":
                    raise SystemExit(
                        "cyloss build: CYLOSS_OPENMP=required but the compiler "
                        f"cannot build OpenMP code with {omp_compile} {omp_link}:\n{err}"
                    )
                _log(f"OpenMP NOT available with {cc} ({ctype}); building serial loops")
                omp_compile, omp_link = [], []
        if omp_compile:
            _log(f"OpenMP ON ({mode}): compile {omp_compile} link {omp_link}")
        elif mode == "off":
            _log("OpenMP OFF (CYLOSS_OPENMP=off); building serial loops")
        _log(f"compiler {cc} ({ctype}); flags {base}; debug={'on' if debug else 'off'}")

        flags_text = " ".join(base + omp_compile)
        for ext in self.extensions:
            ext.extra_compile_args = base + omp_compile
            ext.extra_link_args = omp_link
            ext.define_macros = list(ext.define_macros or []) + [
                ("CYLOSS_BUILD_FLAGS", '"' + flags_text.replace('"', "") + '"'),
                ("CYLOSS_BUILD_OPENMP", "1" if omp_compile else "0"),
                ("CYLOSS_BUILD_DEBUG", "1" if debug else "0"),
            ]
        super().build_extensions()


def extensions():
    from Cython.Build import cythonize

    debug = os.environ.get("CYLOSS_DEBUG", "0") not in ("", "0")
    directives = {
        "language_level": 3,
        "boundscheck": debug,
        "wraparound": debug,
        "cdivision": True,
        # Off even when debugging: the loops pass an optional memoryview (weights, loss
        # or gradient buffer) unacquired when its flag says it is unused, which this
        # check would reject at the call, before the flag is read.
        "initializedcheck": False,
        "nonecheck": False,
        "embedsignature": True,
        "freethreading_compatible": True,
    }
    exts = [
        Extension("cyloss._openmp", ["src/cyloss/_openmp.pyx"]),
        Extension("cyloss._loops", ["src/cyloss/_loops.pyx"], include_dirs=["src/cyloss"],
                  depends=["src/cyloss/_vecmath.h", "src/cyloss/_kernels.h", "src/cyloss/_rows.h",
                           "src/cyloss/_fastpaths.h", "src/cyloss/_kernels.pxd",
                           "src/cyloss/_kernels_pairs.h", "src/cyloss/_pairs.pxi"]),
        Extension("cyloss._ctc", ["src/cyloss/_ctc.pyx"]),
    ]
    return cythonize(
        exts,
        compiler_directives=directives,
        include_path=["src/cyloss"],
        # Regenerate the C every build: the debug switch changes it.
        force=True,
    )


setup(ext_modules=extensions(), cmdclass={"build_ext": BuildExt})
