#!/usr/bin/env bash
# check-exports.sh - what libdiffusion shows the world: the shared library
# exports exactly the functions the public header declares, every one prefixed
# dfn_; the static library's global symbols (internal ones included, which a
# static link cannot hide) all carry the prefix too, so none can clash with a
# user's names. Usage: scripts/check-exports.sh LIBDIFFUSION.so LIBDIFFUSION.a INCLUDE_DIR
set -euo pipefail
so=$1 a=$2 inc=$3
fail=0
# (the sanitizers' own symbols in a sanitizer build, __asan_* / __odr_asan.*,
# are the instrumentation's, not the library's)
sanitizer='^(__asan|__odr_asan|__ubsan|__sancov|__sanitizer)'
exported=$(nm -D --defined-only "$so" | awk 'NF == 3 && $2 ~ /[TDBRVW]/ { print $3 }' |
    grep -Ev "$sanitizer" | sort -u || true)
declared=$(cat "$inc"/diffusion.h "$inc"/diffusion/*.h |
    sed -n 's/^[A-Za-z_][A-Za-z0-9_ ]*[ *]\(dfn_[a-z0-9_]*\)(.*/\1/p' | sort -u)
bad=$(echo "$exported" | grep -v '^dfn_' || true)
if [ -n "$bad" ]; then
    echo "exports: $so exports symbols without the dfn_ prefix:"; echo "$bad" | sed 's/^/  /'; fail=1
fi
extra=$(comm -23 <(echo "$exported") <(echo "$declared"))
if [ -n "$extra" ]; then
    echo "exports: $so exports what the header does not declare (internal: hide it):"
    echo "$extra" | sed 's/^/  /'; fail=1
fi
missing=$(comm -13 <(echo "$exported") <(echo "$declared"))
if [ -n "$missing" ]; then
    echo "exports: the header declares what $so does not export:"; echo "$missing" | sed 's/^/  /'; fail=1
fi
unprefixed=$(nm -g --defined-only "$a" | awk 'NF == 3 { print $3 }' | grep -Ev "$sanitizer" |
    grep -v '^dfn_' | sort -u || true)
if [ -n "$unprefixed" ]; then
    echo "exports: $a has global symbols without the dfn_ prefix:"; echo "$unprefixed" | sed 's/^/  /'; fail=1
fi
if [ $fail -eq 0 ]; then
    echo "exports: $(echo "$exported" | wc -l) functions exported, each declared in the header and" \
         "prefixed dfn_; $(nm -g --defined-only "$a" | awk 'NF == 3' | wc -l) global symbols of the" \
         "static library, all prefixed"
fi
exit $fail
