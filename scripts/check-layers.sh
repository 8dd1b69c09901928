#!/usr/bin/env bash
# check-layers.sh - the library's layering, checked: every #include in src/ and
# include/diffusion/ must point at the file's own module or at a module below
# it (the table below, the same as the README's diagram); the umbrella header
# diffusion.h is for users, not for the library itself; and no chain of
# headers includes itself. Exits non-zero naming every violation.
# Usage: scripts/check-layers.sh [SOURCE_DIR]
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

# module: the modules it may include (besides itself)
declare -A allowed=(
    [core]=""
    [nn]="core"
    [io]="core"
    [plot]="core"
    [data]="core"
    [process]="core"
    [models]="core nn io"
    [sample]="core data process"
    [pipeline]="core io models process sample"
    [eval]="core data models process sample"
    [train]="core io plot data process models sample pipeline eval"
)

fail=0
edges=$(mktemp)
trap 'rm -f "$edges"' EXIT

# The module of a file: src/M/... or include/diffusion/M.h.
module_of() {
    case "$1" in
        src/*) local rest=${1#src/}; echo "${rest%%/*}" ;;
        include/diffusion/*.h) local b=${1##*/}; echo "${b%.h}" ;;
    esac
}

files=$(find src include/diffusion -name '*.[ch]' | sort)
for f in $files; do
    m=$(module_of "$f")
    if [ -z "${allowed[$m]+set}" ]; then
        echo "layering: $f: module '$m' is not in the table of scripts/check-layers.sh"
        fail=1
        continue
    fi
    dir=$(dirname "$f")
    while IFS= read -r inc; do
        case "$inc" in
            diffusion.h)
                echo "layering: $f includes the umbrella header diffusion.h (include the sections it needs)"
                fail=1; continue ;;
            diffusion/*) target="include/$inc"; tm=$(module_of "$target") ;;
            */*) target="src/$inc"; tm=${inc%%/*} ;;
            *) target="$dir/$inc"; tm=$m
               if [ ! -f "$target" ]; then
                   echo "layering: $f includes \"$inc\", which is not in $dir (name the module: \"module/$inc\")"
                   fail=1; continue
               fi ;;
        esac
        if [ ! -f "$target" ]; then
            echo "layering: $f includes \"$inc\", which does not exist"
            fail=1; continue
        fi
        if [ "$tm" != "$m" ] && [[ " ${allowed[$m]} " != *" $tm "* ]]; then
            echo "layering: $f ($m) includes $inc ($tm): $m may use only: ${allowed[$m]:-nothing}"
            fail=1
        fi
        case "$f" in *.h) echo "$f $target" >> "$edges" ;; esac
    done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
done

# Header cycles: tsort reports the files of a loop on stderr.
if ! loops=$(tsort "$edges" 2>&1 >/dev/null) || [ -n "$loops" ]; then
    echo "layering: headers include each other in a cycle:"
    echo "$loops" | sed 's/^/  /'
    fail=1
fi

if [ $fail -eq 0 ]; then
    echo "layering: $(echo "$files" | wc -l) files of ${#allowed[@]} modules include only what their layer allows; no header cycles"
fi
exit $fail
