#!/usr/bin/env bash
# check-install.sh - an installed copy of libdiffusion works for a user: install
# the build into a fresh prefix, compile examples/sample_png.c against it
# through `pkg-config --cflags --libs diffusion` (the shared library) and
# `pkg-config --static` (the static one), train a model with the installed
# program, and let both example binaries sample it into a PNG.
# Usage: scripts/check-install.sh BUILD_DIR SOURCE_DIR   (exit 77: no C compiler or pkg-config)
set -euo pipefail
build=$1 src=$2
command -v pkg-config > /dev/null && command -v cc > /dev/null || { echo "SKIPPED: needs cc and pkg-config"; exit 77; }
prefix=$(mktemp -d /tmp/dfn_install_XXXXXX)
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" > /dev/null
pc=$(find "$prefix" -name diffusion.pc)
[ -n "$pc" ] || { echo "install: no diffusion.pc under $prefix"; exit 1; }
export PKG_CONFIG_PATH=$(dirname "$pc")
echo "install: $(pkg-config --modversion diffusion) in $prefix; cflags: $(pkg-config --cflags diffusion); libs: $(pkg-config --libs diffusion)"
for f in include/diffusion.h include/diffusion/pipeline.h bin/diffusion; do
    [ -e "$prefix/$f" ] || { echo "install: $prefix/$f is missing"; exit 1; }
done
libdir=$(pkg-config --variable=libdir diffusion)
ls "$libdir"/libdiffusion.so* "$libdir"/libdiffusion.a > /dev/null
# a sanitizer build's libraries need the sanitizers' runtime in the program too
san=""
grep -q '^DFN_SANITIZE:BOOL=ON' "$build/CMakeCache.txt" 2> /dev/null && san="-fsanitize=address,undefined"

# shared: the compiler sees only what pkg-config says
cc -std=c11 -Wall -Wextra -Werror $san "$src/examples/sample_png.c" $(pkg-config --cflags --libs diffusion) \
    -o "$prefix/sample_shared"
# static: libdiffusion.a and its dependencies, by pkg-config --static
cc -std=c11 -Wall -Wextra -Werror $san "$src/examples/sample_png.c" $(pkg-config --cflags diffusion) \
    "$libdir/libdiffusion.a" $(pkg-config --static --libs diffusion | sed 's/-ldiffusion//') \
    -o "$prefix/sample_static"
if ldd "$prefix/sample_static" | grep -q libdiffusion; then
    echo "install: the static build links libdiffusion.so"; exit 1
fi

"$prefix/bin/diffusion" train --data toy:moons --out "$prefix/run" --steps 20 --batch 64 \
    --warmup 2 --samples 0 --quiet
LD_LIBRARY_PATH="$libdir" "$prefix/sample_shared" "$prefix/run/model.safetensors" "$prefix/a.png" 64 dpm++2m 10
ldd_line=$(LD_LIBRARY_PATH="$libdir" ldd "$prefix/sample_shared" | grep libdiffusion)
case "$ldd_line" in *"$libdir"*) ;; *) echo "install: not the installed library: $ldd_line"; exit 1 ;; esac
"$prefix/sample_static" "$prefix/run/model.safetensors" "$prefix/b.png" 64 dpm++2m 10
cmp "$prefix/a.png" "$prefix/b.png"  # the same samples, the same bytes
echo "install: examples/sample_png.c built against the installed copy (shared and static) wrote the same PNG"
