#!/bin/sh
# SPDX-License-Identifier: MIT
# The layer-order check: a source file under src/LAYER/ may include the
# public header, headers of its own folder (as "LAYER/x.h" or "x.h"), and
# headers of the layers listed before LAYER; never one of a later layer.
# The last layer named (the command-line tool) may include only the public
# header and its own folder's headers.
#
#   check_layers.sh SRC_DIR LAYER... CLI_LAYER
set -u
src=$1
shift
order="$*"
last=
for l in $order; do last=$l; done

index_of() {
    i=0
    for l in $order; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo -1
}

bad=0
files=0
for layer in $order; do
    mine=$(index_of "$layer")
    for f in "$src/$layer"/*.c "$src/$layer"/*.h; do
        [ -f "$f" ] || continue
        files=$((files + 1))
        # Quoted includes only; system headers are <...>.
        for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
            case $inc in
            nvpflow.h) continue ;;
            */*)
                dir=${inc%%/*}
                ;;
            *)
                if [ -f "$src/$layer/$inc" ]; then continue; fi
                echo "$f: includes \"$inc\", which is neither public nor in $src/$layer/"
                bad=$((bad + 1))
                continue
                ;;
            esac
            theirs=$(index_of "$dir")
            if [ "$theirs" -lt 0 ]; then
                echo "$f: includes \"$inc\" from an unknown folder"
                bad=$((bad + 1))
            elif [ "$layer" = "$last" ] && [ "$dir" != "$layer" ]; then
                echo "$f: the $layer layer uses the public header only, not \"$inc\""
                bad=$((bad + 1))
            elif [ "$theirs" -gt "$mine" ]; then
                echo "$f: layer $layer includes \"$inc\" from the higher layer $dir"
                bad=$((bad + 1))
            fi
        done
    done
done
# Every source file lives in a layer's folder.
for f in "$src"/*.c "$src"/*.h; do
    [ -f "$f" ] || continue
    echo "$f: not in a layer folder"
    bad=$((bad + 1))
done
if [ "$bad" -ne 0 ]; then
    echo "check-layers: $bad include(s) break the layer order ($order)"
    exit 1
fi
echo "check-layers: $files files, every include goes down the layers ($order)"
