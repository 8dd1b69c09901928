# aarch64-linux-gnu.cmake - cross-compiling for 64-bit ARM with Debian's toolchain
# (gcc-aarch64-linux-gnu) against the arm64 libraries of a multiarch system
# (dpkg --add-architecture arm64; scripts/test-aarch64.sh installs them), the
# tests run under qemu-user:
#   cmake -S . -B build-aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
# ctest runs the test programs through the emulator
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
# pkg-config (cairo) reads the arm64 .pc files
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
# libdnnl-dev is not co-installable across architectures (its dnnl_config.h
# differs in the GPU runtime only): the headers are the host's, the library
# the arm64 runtime package's.
set(DNNL_LIB /usr/lib/aarch64-linux-gnu/libdnnl.so.2 CACHE FILEPATH "oneDNN for aarch64")
