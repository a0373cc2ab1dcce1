# Spack recipe for vamp_mpi. Copy this directory into a Spack repository as packages/vamp-mpi/ (e.g.
# `spack repo create myrepo && cp packaging/spack/package.py myrepo/packages/vamp-mpi/`), then
# `spack install vamp-mpi` (add +tests to build and run the test suite with `spack install --test=root`).
# tests/test_packaging.sh checks, without Spack, that it parses and that its dependencies are those CMake finds.

from spack.package import *


class VampMpi(CMakePackage):
    """Trains the VAEs of Tomczak & Welling, "VAE with a VampPrior" (AISTATS 2018), data-parallel over MPI
    ranks, with parallel HDF5 datasets and checkpoints; results are bit-identical for any rank count."""

    homepage = "https://github.com/vamp-mpi/vamp_mpi"
    git = "https://github.com/vamp-mpi/vamp_mpi.git"

    license("MIT")

    version("main", branch="main")

    variant("tests", default=False, description="Build the test suite (needs cmocka; the script tests also "
            "need python3 with torch, h5py, numpy, scipy, matplotlib)")

    depends_on("c", type="build")
    depends_on("cmake@3.20:", type="build")
    depends_on("pkgconfig", type="build")

    depends_on("mpi")
    # parallel HDF5 (MPI-IO) for the striped dataset reads and the collective checkpoints
    depends_on("hdf5+mpi")
    # OpenBLAS itself, not any BLAS: the run log and every file record openblas_get_corename()
    depends_on("openblas")
    depends_on("libinih")
    depends_on("random123")
    depends_on("matio")
    depends_on("libpng")
    depends_on("zlib-api")

    depends_on("cmocka", when="+tests")

    def cmake_args(self):
        return [self.define_from_variant("BUILD_TESTING", "tests")]
