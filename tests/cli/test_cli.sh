#!/bin/sh
# SPDX-License-Identifier: MIT
# End-to-end test of the nvpflow command-line tool.
#
#   sh tests/cli/test_cli.sh build/bin/nvpflow      (or: make test-cli)
#
# Generates a two-moons CSV with awk, trains a small model, and checks
# info, sample and score, the CSV error reports (file:line, no output file
# left behind), the exit statuses (0 ok, 1 error, 2 usage) and --help.
set -u

B=${1:?usage: test_cli.sh path/to/nvpflow}
case $B in /*) ;; *) B=$(pwd)/$B ;; esac
[ -x "$B" ] || { echo "test_cli: $B is not an executable" >&2; exit 1; }

DATA=$(cd "$(dirname "$0")/data" && pwd)
. "$(dirname "$0")/checks.sh"
checks_tmpdir nvpflow-cli

# lines FILE N DESCRIPTION
lines() {
    n=$(wc -l < "$1" | tr -d ' ')
    if [ "$n" -eq "$2" ]; then ok; else fail "$3: $n lines, expected $2"; fi
}
# numeric FILE COLS SKIP DESCRIPTION: every line after the first SKIP has
# COLS comma-separated finite numbers
numeric() {
    if awk -F, -v cols="$2" -v skip="$3" '
        NR <= skip { next }
        NF != cols { exit 1 }
        { for (i = 1; i <= NF; i++)
              if ($i !~ /^-?([0-9]+\.?[0-9]*|\.[0-9]+)(e[-+]?[0-9]+)?$/)
                  exit 1 }' "$1"; then ok; else
        fail "$4: not $2 finite numbers per line"; head -5 "$1" >&2
    fi
}
# json FILE DESCRIPTION [PYTHON-CONDITION]: FILE holds one JSON object (a
# parse with python3; without it, a look at the first and last line), and
# the condition on it, d, holds (checked where python3 exists).
if command -v python3 >/dev/null 2>&1; then have_python=yes; else have_python=no; fi
json() {
    if [ "$have_python" = yes ]; then
        if python3 -c '
import json, sys
d = json.load(open(sys.argv[1], "rb"))
sys.exit(0 if isinstance(d, dict) and eval("(" + sys.argv[2] + ")") else 1)' \
            "$1" "${3:-True}" 2>pyerr.txt; then ok; else
            fail "$2: not JSON, or not ${3:-an object}"; cat pyerr.txt >&2
            head -c 2000 "$1" >&2
        fi
    elif [ "$(head -n 1 "$1")" = "{" ] && [ "$(tail -n 1 "$1")" = "}" ]; then
        ok
    else
        fail "$2: not a JSON object"; head -c 2000 "$1" >&2
    fi
}

# -------------------------------------------------------------- the data
# 400 noisy two-moons points with a header, a comment and a blank line.
awk 'BEGIN {
    srand(7); pi = atan2(0, -1)
    print "# two moons"; print "x, y"; print ""
    for (i = 0; i < 400; i++) {
        t = rand() * pi
        if (i % 2) { x = cos(t); y = sin(t) } else { x = 1 - cos(t); y = 0.5 - sin(t) }
        u = rand(); if (u < 1e-12) u = 1e-12
        r = sqrt(-2 * log(u)); a = 2 * pi * rand()
        printf "%.6f,%.6f\r\n", x + 0.1 * r * cos(a), y + 0.1 * r * sin(a)
    }
}' > moons.csv

# ------------------------------------------------------------ help, usage
expect 0 "--help" -- "$B" --help
# Output that cannot be written (a full disk) is an error, even for help.
if "$B" --help > /dev/full 2> err.txt; then fail "--help to a full disk: exit 0"; else ok; fi
has err.txt "error writing to standard output" "--help to a full disk"
has out.txt "Usage: nvpflow" "--help"
expect 0 "--version" -- "$B" --version
has out.txt "nvpflow " "--version"
for cmd in fit sample score info; do
    expect 0 "$cmd --help" -- "$B" "$cmd" --help
    has out.txt "Usage: nvpflow $cmd" "$cmd --help"
    expect 0 "help $cmd" -- "$B" help "$cmd"
done
expect 2 "no command" -- "$B"
expect 2 "unknown command" -- "$B" frobnicate
expect 2 "fit without -o" -- "$B" fit moons.csv
expect 2 "fit bad --steps" -- "$B" fit moons.csv -o m.nvp --steps ten
expect 2 "fit bad --hidden" -- "$B" fit moons.csv -o m.nvp --hidden 16,,16
expect 2 "fit unknown option" -- "$B" fit moons.csv -o m.nvp --bogus
expect 2 "fit --average 1" -- "$B" fit moons.csv -o m.nvp --average 1
rc=0; "$B" fit moons.csv -o full.nvp --steps 20 --hidden 8,8 > /dev/full 2> err.txt || rc=$?
check "fit with its summary to a full disk: exit 1" [ "$rc" -eq 1 ]
has err.txt "error writing the summary" "fit with its summary to a full disk"
rm -f full.nvp
expect 2 "fit -o -" -- "$B" fit moons.csv -o -
has err.txt "a model goes to a file" "fit -o -"
expect 2 "fit -o ''" -- "$B" fit moons.csv -o ''
has err.txt "the path is empty" "fit -o ''"
# A link into a directory that does not exist is refused before training.
ln -s no/such/dir/m.nvp dangling.nvp
expect 1 "fit -o LINK into a missing directory" -- "$B" fit moons.csv -o dangling.nvp
has err.txt "directory 'no/such/dir'" "fit -o LINK into a missing directory"
rm -f dangling.nvp
expect 2 "fit --average -0.5" -- "$B" fit moons.csv -o m.nvp --average -0.5
expect 2 "fit --average rounding to 1" -- "$B" fit moons.csv -o m.nvp \
    --average 0.99999999
expect 2 "fit --clip-norm -1" -- "$B" fit moons.csv -o m.nvp --clip-norm -1
expect 2 "fit --clip-norm word" -- "$B" fit moons.csv -o m.nvp --clip-norm x
expect 2 "fit --clip-norm rounding to 0" -- "$B" fit moons.csv -o m.nvp \
    --clip-norm 1e-50
expect 2 "sample without -n" -- "$B" sample m.nvp
expect 2 "score without data" -- "$B" score m.nvp
absent m.nvp "usage errors"

# ------------------------------------------------------------------- fit
# m.nvp has the layout of version 0.4 (four couplings with the tutorial's
# half masks, no whitening layer, clamp 5): a model of file format 1.
expect 0 "fit" -- "$B" fit moons.csv -o m.nvp --hidden 16,16 --steps 300 \
    --eval-every 50 --seed 1 --norm none --mask half --layers 4 --clamp 5 \
    --base normal
has out.txt "saved:" "fit summary"
has out.txt "best NLL" "fit summary"
check "fit: no model file" [ -s m.nvp ]
expect 0 "fit --quiet" -- "$B" fit moons.csv -o q.nvp --hidden 16,16 \
    --steps 50 --quiet --val-frac 0 --threads 1
check "fit --quiet printed to stdout" [ ! -s out.txt ]
check "fit --quiet: no model file" [ -s q.nvp ]
# The same run scoring the parameter average instead: the summary says
# what was scored, the scores differ, training itself does not (the
# iterate goes back into the chain after each evaluation), and the saved
# model is the one scored.
expect 0 "fit, to compare with --average" -- "$B" fit moons.csv -o plain.nvp \
    --hidden 16,16 --steps 300 --eval-every 50 --seed 1 --average 0
grep "best NLL" out.txt > plain_best.txt
grep "^step 300/300" err.txt | sed 's/ *val.*//' > plain_loss.txt
expect 0 "fit --average" -- "$B" fit moons.csv -o avg.nvp --hidden 16,16 \
    --steps 300 --eval-every 50 --seed 1 --average 0.9
has out.txt "parameter average (decay 0.9)" "fit --average summary"
check "fit --average: no model file" [ -s avg.nvp ]
grep "best NLL" out.txt > avg_best.txt
grep "^step 300/300" err.txt | sed 's/ *val.*//' > avg_loss.txt
check "fit: no best NLL to compare" [ -s plain_best.txt ]
check "fit --average scored the same parameters as without" \
    sh -c '! cmp -s avg_best.txt plain_best.txt'
check "fit: no training loss at step 300" grep -q "loss [0-9]" plain_loss.txt
check "fit --average changed training (iterate not restored?)" \
    cmp -s avg_loss.txt plain_loss.txt
expect 0 "fit --average on all rows" -- "$B" fit moons.csv -o avg_all.nvp \
    --hidden 16,16 --steps 300 --eval-every 50 --seed 1 --average 0.9 \
    --val-frac 0
best=$(awk '/^best NLL/ { print $(NF - 1) }' out.txt)
"$B" score avg_all.nvp moons.csv -o avg_sc.csv
saved=$(awk 'NR > 1 { s -= $1; n++ } END { printf "%.6g", s / n }' avg_sc.csv)
if [ -n "$best" ] &&
    awk -v a="$best" -v b="$saved" 'BEGIN { d = a - b; if (d < 0) d = -d;
        exit !(d <= 1e-5 * (a < 0 ? -a : a)) }'; then ok; else
    fail "fit --average: saved model scores $saved, reported best $best"; fi
# Gradient-norm clipping with a limit far below the gradients' norms
# changes training (the same run as plain.nvp otherwise), and the summary
# says so.
expect 0 "fit --clip-norm" -- "$B" fit moons.csv -o clip.nvp --hidden 16,16 \
    --steps 300 --eval-every 50 --seed 1 --clip-norm 1e-3 --average 0
has out.txt "gradient norm limited to 0.001" "fit --clip-norm summary"
grep "^step 300/300" err.txt | sed 's/ *val.*//' > clip_loss.txt
check "fit: no training loss with --clip-norm" grep -q "loss [0-9]" clip_loss.txt
check "fit --clip-norm did not change training" \
    sh -c '! cmp -s clip_loss.txt plain_loss.txt'

# --json: the same summary for programs.  The run is plain.nvp's; its
# JSON says what the text says, and standard output holds nothing else.
expect 0 "fit --json" -- "$B" fit moons.csv -o json.nvp --hidden 16,16 \
    --steps 300 --eval-every 50 --seed 1 --json --average 0
cp out.txt fit.json
json fit.json "fit --json"
has fit.json '"stop": "max_steps"' "fit --json"
has fit.json '"hidden": [16, 16]' "fit --json"
has fit.json '"coupling_layers": 8' "fit --json"
json fit.json "fit --json: the run" \
    'd["model"] == "json.nvp" and d["data"] == "moons.csv" and d["rows"] == 400
     and d["columns"] == 2 and d["header"] is True and d["training_rows"] == 320
     and d["validation_rows"] == 80 and d["steps"] == 300 and d["max_steps"] == 300
     and d["seed"] == 1 and d["refused_steps"] == 0 and d["evaluated_on"] == "validation"
     and d["lr"] == 0.001 and d["batch"] == 256 and d["clip_norm"] == 0
     and d["average"] == 0 and d["clamp"] == 2 and 0 < d["best_step"] <= 300
     and d["layers"] == 9 and d["norm"] == "linear" and d["mask"] == "random"
     and d["weight_decay"] == 1 and d["eval_every"] == 50 and d["patience"] == 15
     and d["lr_drops"] == 2 and d["noise"] == 0 and d["init_seed"] == 1
     and d["validation_file"] is None and d["dequantized_columns"] == 0
     and d["improved"] is True and d["best_nll"] < d["initial_nll"]
     and d["still_improving"] in (True, False) and d["lr_drops_done"] == 0'
# The best NLL is the text summary's, to its six digits.
text_best=$(sed -n 's/^best NLL: *\([^ ]*\) nats.*/\1/p' plain_best.txt)
json fit.json "fit --json: best_nll against the text summary" \
    "'%.6g' % d['best_nll'] == '$text_best'"
expect 0 "fit --json --quiet" -- "$B" fit moons.csv -o jq.nvp --hidden 8,8 \
    --steps 20 --json --quiet --base normal
json out.txt "fit --json --quiet"
check "fit --json --quiet: progress on stderr" [ ! -s err.txt ]
# Strings are escaped and bytes that are not UTF-8 replaced: a model named
# with a quote, a backslash, a tab and an invalid byte comes back whole.
weird=$(printf 'we"ird\\\t\377.nvp')
expect 0 "fit --json, a strange model name" -- "$B" fit moons.csv -o "$weird" \
    --hidden 8,8 --steps 20 --json --quiet
json out.txt "fit --json, a strange model name" \
    'd["model"] == "we\"ird\\\t\ufffd.nvp"'
rm -f "$weird"
expect 2 "fit --json=1" -- "$B" fit moons.csv -o j.nvp --json=1
has err.txt "option '--json' takes no value" "fit --json=1"

# ------------------------------------------ fit: the model for real tables
# 300 rows of three correlated columns (a Gaussian with a full covariance)
# and a fourth, skewed one, and whole-number columns for --dequantize.
awk 'BEGIN {
    srand(11); pi = atan2(0, -1)
    for (i = 0; i < 300; i++) {
        for (k = 0; k < 4; k++) {
            u = rand(); if (u < 1e-12) u = 1e-12
            g[k] = sqrt(-2 * log(u)) * cos(2 * pi * rand())
        }
        x = 2 + g[0]; y = 0.8 * g[0] + 0.6 * g[1] - 1; z = -0.5 * g[0] + 0.3 * y + 0.5 * g[2]
        printf "%.6f,%.6f,%.6f,%.6f\n", x, y, z, exp(0.5 * g[3])
    }
}' > corr4.csv
cut -d, -f1-3 corr4.csv > corr3.csv
head -n 240 corr3.csv > tr3.csv
tail -n 60 corr3.csv > va3.csv
# gauss_ll FILE FULL: mean log density of the rows of FILE (3 columns)
# under the maximum-likelihood Gaussian of those rows, with the full
# covariance (FULL=1) or its diagonal (FULL=0).
gauss_ll() {
    awk -F, -v full="$2" '
    { n++; for (j = 1; j <= 3; j++) x[n, j] = $j }
    END {
        for (j = 1; j <= 3; j++) { m[j] = 0; for (i = 1; i <= n; i++) m[j] += x[i, j]; m[j] /= n }
        for (a = 1; a <= 3; a++) for (b = 1; b <= 3; b++) {
            c[a, b] = 0
            for (i = 1; i <= n; i++) c[a, b] += (x[i, a] - m[a]) * (x[i, b] - m[b])
            c[a, b] /= n
            if (!full && a != b) c[a, b] = 0
        }
        det = c[1,1] * (c[2,2] * c[3,3] - c[2,3] * c[3,2]) \
            - c[1,2] * (c[2,1] * c[3,3] - c[2,3] * c[3,1]) \
            + c[1,3] * (c[2,1] * c[3,2] - c[2,2] * c[3,1])
        for (a = 1; a <= 3; a++) for (b = 1; b <= 3; b++) {
            a1 = b % 3 + 1; a2 = (b + 1) % 3 + 1; b1 = a % 3 + 1; b2 = (a + 1) % 3 + 1
            inv[a, b] = (c[a1, b1] * c[a2, b2] - c[a1, b2] * c[a2, b1]) / det
        }
        s = 0
        for (i = 1; i <= n; i++) {
            q = 0
            for (a = 1; a <= 3; a++) for (b = 1; b <= 3; b++)
                q += (x[i, a] - m[a]) * inv[a, b] * (x[i, b] - m[b])
            s += -0.5 * q - 0.5 * log(det) - 1.5 * log(2 * atan2(0, -1))
        }
        printf "%.6f", s / n
    }' "$1"
}
mean_score() { awk '{ s += $1; n++ } END { printf "%.6f", s / n }' "$1"; }
close() { awk -v a="$1" -v b="$2" -v t="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= t) }'; }

# Untrained, the default model is the full-covariance Gaussian fit of the
# training rows (the whitening layer and couplings that start as the
# identity); with --norm actnorm it is the Gaussian with independent
# columns.  Both against the fit computed here.
expect 0 "fit --steps 0" -- "$B" fit corr3.csv --steps 0 --val-frac 0 -o g.nvp
"$B" score g.nvp corr3.csv > g_sc.txt
got=$(mean_score g_sc.txt); want=$(gauss_ll corr3.csv 1)
check "fit --steps 0: mean log density $got, the Gaussian fit's $want" close "$got" "$want" 2e-4
expect 0 "fit --steps 0 --norm actnorm" -- "$B" fit corr3.csv --steps 0 --val-frac 0 \
    -o d.nvp --norm actnorm
"$B" score d.nvp corr3.csv > d_sc.txt
got=$(mean_score d_sc.txt); want=$(gauss_ll corr3.csv 0)
check "fit --norm actnorm --steps 0: $got, the diagonal Gaussian's $want" close "$got" "$want" 2e-4
check "the full covariance fits better than the diagonal" \
    awk -v a="$(mean_score g_sc.txt)" -v b="$want" 'BEGIN { exit !(a > b + 0.1) }'

# --val FILE: every row of the data trains, the file's rows validate.
expect 0 "fit --val" -- "$B" fit tr3.csv --val va3.csv -o v.nvp --steps 40 \
    --hidden 8,8 --json --quiet
json out.txt "fit --val" \
    'd["training_rows"] == 240 and d["validation_rows"] == 60
     and d["validation_file"] == "va3.csv" and d["evaluated_on"] == "validation"
     and d["best_nll"] <= d["initial_nll"]'
expect 2 "fit --val --val-frac" -- "$B" fit tr3.csv --val va3.csv --val-frac 0.1 -o v2.nvp
has err.txt "exclude each other" "fit --val --val-frac"
expect 1 "fit --val, a missing file" -- "$B" fit tr3.csv --val nosuch.csv -o v2.nvp
absent v2.nvp "fit --val, a missing file"
cut -d, -f1-2 va3.csv > va2.csv
expect 1 "fit --val, other columns" -- "$B" fit tr3.csv --val va2.csv -o v2.nvp
has err.txt "va2.csv has 2 columns, tr3.csv 3" "fit --val, other columns"
absent v2.nvp "fit --val, other columns"

# The masks: parity, half, and random (a half, then its complement).
expect 0 "fit --mask parity" -- "$B" fit corr4.csv --mask parity --layers 4 --steps 0 -o p.nvp
"$B" info --json p.nvp > p.json
json p.json "fit --mask parity" \
    '[l.get("mask") for l in d["layers"]] == ["1010", "0101", "1010", "0101", None]'
expect 0 "fit --mask half" -- "$B" fit corr4.csv --mask half --layers 2 --steps 0 -o h.nvp
"$B" info --json h.nvp > h.json
json h.json "fit --mask half" '[l.get("mask") for l in d["layers"]][:2] == ["1100", "0011"]'
expect 0 "fit --mask random" -- "$B" fit corr4.csv --layers 6 --steps 0 -o r.nvp
"$B" info --json r.nvp > r.json
json r.json "fit --mask random: complementary pairs" \
    'all(int(d["layers"][k]["mask"], 2) + int(d["layers"][k + 1]["mask"], 2) == 15
         and d["layers"][k]["mask"].count("1") == 2 for k in (0, 2, 4))
     and len(set(l["mask"] for l in d["layers"][:6])) > 2'
expect 2 "fit --mask bogus" -- "$B" fit corr4.csv --mask bogus -o x.nvp
has err.txt "'bogus' is not one of random, parity, half" "fit --mask bogus"
# --norm: none gives couplings alone (format 1), actnorm that layer.
expect 0 "fit --norm none" -- "$B" fit corr4.csv --norm none --layers 2 --steps 0 -o n.nvp
"$B" info --json n.nvp > n.json
json n.json "fit --norm none" 'd["format_version"] == 1 and len(d["layers"]) == 2'
"$B" info --json d.nvp > d.json
json d.json "fit --norm actnorm" 'd["layers"][-1]["kind"] == "actnorm"'
expect 2 "fit --norm bogus" -- "$B" fit corr4.csv --norm bogus -o x.nvp
absent x.nvp "fit --mask/--norm bogus"

# Defaults from the rows and columns: a smaller, smoother model for few
# rows (narrower networks, noise, a refit on all rows; fewer layers from
# 5 columns, and for at most 4 columns 8 layers, lr 0.003 and weight
# decay 0.1), wider networks for two columns; a full batch and frequent
# evaluations for few rows.
head -n 100 corr3.csv > small3.csv
expect 0 "fit, few rows" -- "$B" fit small3.csv --steps 0 -o s3.nvp --json --quiet
json out.txt "fit, few rows: defaults" \
    'd["hidden"] == [32, 32] and d["batch"] == 80 and d["eval_every"] == 10
     and d["coupling_layers"] == 8 and d["noise"] == 0.1
     and d["lr"] == 0.003 and d["weight_decay"] == 0.1
     and d["refit"] and d["refit_rows"] == 100 and d["training_rows"] == 80'
expect 0 "fit, more rows" -- "$B" fit corr3.csv --steps 0 -o s3.nvp --json --quiet
json out.txt "fit, more rows: defaults" \
    'd["hidden"] == [64, 64] and d["batch"] == 128
     and d["coupling_layers"] == 8 and d["noise"] == 0
     and not d["refit"] and d["refit_rows"] == 0'
# --refit: the replayed steps are those that led to the best evaluation;
# no turns it off, yes turns it on for any table.
expect 0 "fit --refit, few rows" -- "$B" fit small3.csv --steps 200 -o s3.nvp \
    --json --quiet
json out.txt "fit --refit: the steps to the best" \
    'd["refit"] and d["refit_rows"] == 100 and
     (d["refit_steps"] > 0) == (d["best_step"] > 0) and
     d["refit_steps"] <= d["best_step"]'
"$B" score s3.nvp small3.csv > s3.lp
numeric s3.lp 1 0 "fit --refit: the refitted model scores"
expect 0 "fit --refit no" -- "$B" fit small3.csv --steps 50 --refit no \
    -o s3.nvp --json --quiet
json out.txt "fit --refit no" 'not d["refit"] and d["refit_rows"] == 0'
expect 0 "fit --refit yes" -- "$B" fit corr3.csv --steps 50 --refit yes \
    -o s3.nvp --json --quiet
json out.txt "fit --refit yes" \
    'd["refit"] and d["refit_rows"] == d["rows"] and d["refit_steps"] <= 50'
expect 0 "fit --refit yes, no validation rows" -- "$B" fit corr3.csv \
    --steps 20 --refit yes --val-frac 0 -o s3.nvp --json --quiet
json out.txt "fit --refit yes, no validation rows" 'not d["refit"]'
expect 2 "fit --refit bogus" -- "$B" fit corr3.csv --refit bogus -o x.nvp
absent x.nvp "fit --refit bogus"
expect 0 "fit, two columns" -- "$B" fit moons.csv --steps 0 -o s3.nvp --json --quiet
json out.txt "fit, two columns: defaults" 'd["hidden"] == [128, 128] and d["batch"] == 256'

# --init-seed draws the masks and weights and leaves the split alone: the
# untrained model's validation NLL depends on the split only.
for i in 1 2; do
    "$B" fit corr4.csv --seed 3 --init-seed $i --steps 30 --hidden 8,8 \
        --base normal -o i$i.nvp --json --quiet > i$i.json 2> /dev/null
done
"$B" fit corr4.csv --seed 4 --init-seed 1 --steps 30 --hidden 8,8 \
    --base normal -o i3.nvp --json --quiet > i3.json 2> /dev/null
json i2.json "fit --init-seed: the same split" \
    'd["initial_nll"] == json.load(open("i1.json"))["initial_nll"] and d["init_seed"] == 2'
json i3.json "fit --seed: another split" \
    'd["initial_nll"] != json.load(open("i1.json"))["initial_nll"]'
check "fit --init-seed: the same model" sh -c '! cmp -s i1.nvp i2.nvp'
"$B" info --json i1.nvp > i1_info.json
"$B" info --json i2.nvp > i2_info.json
json i2_info.json "fit --init-seed: other masks" \
    '[l.get("mask") for l in d["layers"]]
     != [l.get("mask") for l in json.load(open("i1_info.json"))["layers"]]'

# Training that never improves on the untrained model (steps of size 1
# wreck it) is said so; --strict makes it an error and saves nothing.
expect 0 "fit, no improvement" -- "$B" fit corr3.csv --lr 1 --clamp 0 \
    --steps 3 --eval-every 1 -o ni.nvp --json
has err.txt "training never improved on the untrained model" "fit, no improvement: warning"
json out.txt "fit, no improvement" \
    'd["improved"] is False and d["best_step"] == 0 and d["best_nll"] == d["initial_nll"]'
"$B" score ni.nvp corr3.csv > ni_sc.txt
check "fit, no improvement: the Gaussian fit is saved" \
    close "$(mean_score ni_sc.txt)" "$(gauss_ll corr3.csv 1)" 0.2
expect 1 "fit --strict, no improvement" -- "$B" fit corr3.csv --lr 1 --clamp 0 \
    --steps 3 --eval-every 1 -o ns.nvp --strict
has err.txt "nothing saved (--strict)" "fit --strict, no improvement"
absent ns.nvp "fit --strict, no improvement"
expect 0 "fit --strict, improving" -- "$B" fit moons.csv --steps 100 --hidden 8,8 \
    -o st.nvp --strict --quiet --base normal
check "fit --strict, improving: no model" [ -s st.nvp ]

# A run the step cap ends before it converges says so.
expect 0 "fit, capped" -- "$B" fit moons.csv --steps 60 --hidden 8,8 -o cap.nvp
has out.txt "not converged: more --steps may help" "fit, capped"
# --lr-drops: plateaus lower the learning rate, from the best parameters,
# before training stops; with none the same run stops at the first one.
expect 0 "fit --lr-drops 0" -- "$B" fit moons.csv --hidden 8,8 --patience 2 \
    --eval-every 10 --lr-drops 0 -o d0.nvp --json --quiet
cp out.txt d0.json
expect 0 "fit --lr-drops 3" -- "$B" fit moons.csv --hidden 8,8 --patience 2 \
    --eval-every 10 --lr-drops 3 -o d3.nvp --json --quiet
json out.txt "fit --lr-drops 3" \
    'd["lr_drops_done"] == 3 and d["stop"] == "no_improvement"
     and d["steps"] > json.load(open("d0.json"))["steps"]
     and d["best_nll"] <= json.load(open("d0.json"))["best_nll"]'
json d0.json "fit --lr-drops 0" 'd["lr_drops_done"] == 0 and d["stop"] == "no_improvement"'
expect 2 "fit --lr-drops -1" -- "$B" fit moons.csv -o x.nvp --lr-drops -1

# --weight-decay and --noise change training (the run is otherwise the
# same), and the summary shows them.
for run in "wd0:--weight-decay 0" "wd5:--weight-decay 5" "nz:--noise 0.1"; do
    name=${run%%:*}
    "$B" fit moons.csv -o $name.nvp --hidden 16,16 --steps 100 --eval-every 50 \
        --seed 1 ${run#*:} > $name.out 2> $name.err
    grep "^step 100/100" $name.err | sed 's/ *val.*//' > $name.loss
    check "fit ${run#*:}: no training loss" grep -q "loss [0-9]" $name.loss
done
check "fit --weight-decay did not change training" sh -c '! cmp -s wd0.loss wd5.loss'
has wd5.out "weight decay 5" "fit --weight-decay summary"
check "fit --noise did not change training" sh -c '! cmp -s nz.loss wd0.loss'
has nz.out "noise 0.1" "fit --noise summary"
expect 2 "fit --weight-decay -1" -- "$B" fit moons.csv -o x.nvp --weight-decay -1
expect 2 "fit --noise -1" -- "$B" fit moons.csv -o x.nvp --noise -1

# --dequantize: whole-number columns get uniform noise, the others none.
awk 'BEGIN { srand(5); for (i = 0; i < 200; i++)
    printf "%d,%d,%.4f\n", int(rand() * 5), int(rand() * 3) + 7, rand() }' > ints.csv
expect 0 "fit --dequantize" -- "$B" fit ints.csv --dequantize --steps 20 --hidden 8,8 \
    -o dq.nvp --json
json out.txt "fit --dequantize" 'd["dequantized_columns"] == 2'
expect 0 "fit --dequantize, text summary" -- "$B" fit ints.csv --dequantize --steps 20 \
    --hidden 8,8 -o dq.nvp
has out.txt "uniform [0, 1) added to 2 whole-number columns" "fit --dequantize summary"
expect 0 "fit --dequantize --refit yes" -- "$B" fit ints.csv --dequantize --refit yes \
    --steps 20 --hidden 8,8 -o dq.nvp --json
json out.txt "fit --dequantize --refit yes: no refit" 'd["refit"] is False'
has err.txt "--refit yes: no refit (not with --dequantize)" "fit --dequantize --refit yes: says so"
expect 0 "fit, integers without --dequantize" -- "$B" fit ints.csv --steps 0 -o nq.nvp --json --quiet
json out.txt "fit, integers without --dequantize" 'd["dequantized_columns"] == 0'
# A constant whole-number column: an error that names --dequantize, which
# makes it a uniform column to learn.
awk -F, '{ print $1 "," 3 "," $3 }' ints.csv > const.csv
expect 1 "fit, a constant column" -- "$B" fit const.csv --steps 5 -o c.nvp
has err.txt "--dequantize" "fit, a constant column"
absent c.nvp "fit, a constant column"
expect 0 "fit --dequantize, a constant column" -- "$B" fit const.csv --dequantize \
    --steps 5 --hidden 8,8 -o c.nvp --json --quiet
json out.txt "fit --dequantize, a constant column" 'd["dequantized_columns"] == 2'
expect 0 "fit --dequantize, no whole numbers" -- "$B" fit corr3.csv --dequantize --steps 5 \
    --hidden 8,8 -o c.nvp --quiet --json
has err.txt "nothing to do" "fit --dequantize, no whole numbers"
# ... and trains on the rows themselves (it once trained on an unfilled
# buffer: an untrained NLL of 1e9 and, under ASan, refused steps).
cp out.txt dq_none.json
json dq_none.json "fit --dequantize, no whole numbers: the data's NLL" \
    'd["initial_nll"] < 10 and d["refused_steps"] == 0'

# --budget: the defaults, then variations of the best settings so far,
# within the time; settings given on the command line stay as given; a
# trial is kept only when it lowers the validation NLL clearly (beyond the
# rows' noise), so each kept trial is lower than the one before and the
# model saved is the last one kept; the summary lists the trials, each
# with its tail (the validation rows moved twice as far out).
start=$(date +%s)
expect 0 "fit --budget" -- "$B" fit tr3.csv --val va3.csv --budget 4 --hidden 8,8 \
    --steps 200 -o bud.nvp --json
end=$(date +%s)
cp out.txt bud.json
json bud.json "fit --budget: trials" \
    'd["budget"] == 4 and len(d["trials"]) >= 2
     and all(t["hidden"] == [8, 8] for t in d["trials"])
     and all(a > b for a, b in zip(
         [t["best_nll"] for t in d["trials"] if t["best_so_far"]],
         [t["best_nll"] for t in d["trials"] if t["best_so_far"]][1:]))
     and all(isinstance(t["tail"], float) for t in d["trials"])
     and len(set((t["noise"], t["clamp"], t["coupling_layers"], t["lr"],
                  t["weight_decay"], t["base"]) for t in d["trials"])) == len(d["trials"])
     and [(t["best_nll"], t["noise"], t["clamp"], t["coupling_layers"], t["lr"],
           t["weight_decay"], t["base"]) for t in d["trials"] if t["best_so_far"]][-1]
         == (d["best_nll"], d["noise"], d["clamp"], d["coupling_layers"], d["lr"],
             d["weight_decay"], d["base"])
     and d["trials"][0]["noise"] == 0 and d["trials"][0]["best_so_far"] is True'
check "fit --budget 4 took $((end - start)) s" [ $((end - start)) -le 9 ]
has err.txt "trial 1 (" "fit --budget: the trials on stderr"
has err.txt ", tail " "fit --budget: each trial's tail on stderr"
# When a pass over the settings one at a time brings no gain, the time
# left goes to moves of several settings at once: the search does not
# stop after a pass (these trials take a few hundredths of a second).
json bud.json "fit --budget: the time left is used" \
    'len(d["trials"]) > 12 and sum(t["seconds"] for t in d["trials"]) > 2'
"$B" fit tr3.csv --val va3.csv -o nobud.nvp --steps 10 --hidden 8,8 --json --quiet --base normal > nobud.json 2> /dev/null
json nobud.json "fit without --budget" 'd["budget"] is None and "trials" not in d'
# Without --base, a table of at most 16 columns gets both bases trained,
# the normal first (the same run as --base normal), the mixture kept only
# on a clear gain.
"$B" fit tr3.csv --val va3.csv -o auto.nvp --steps 10 --hidden 8,8 --json --quiet > auto.json 2> /dev/null
json auto.json "fit without --base: both bases tried" \
    'd["budget"] is None and [t["base"] for t in d["trials"]] == ["normal", "mixture"]
     and d["base"] == ("mixture" if d["trials"][1]["best_so_far"] else "normal")
     and d["trials"][0]["best_nll"] == json.load(open("nobud.json"))["best_nll"]'
awk 'BEGIN { srand(5); for (i = 0; i < 300; i++) { line = "";
    for (j = 0; j < 17; j++) line = line (j ? "," : "") sprintf("%.4f", rand() + 0.1 * j); print line } }' > wide17.csv
"$B" fit wide17.csv -o w17.nvp --steps 10 --hidden 8,8 --json --quiet > w17.json 2> /dev/null
json w17.json "fit on 17 columns: the normal base only" '"trials" not in d and d["base"] == "normal"'
# The deadline ends a trial that would run on.
start=$(date +%s)
expect 0 "fit --budget, a long trial" -- "$B" fit tr3.csv --val va3.csv --budget 1 \
    --hidden 8,8 --steps 100000000 --patience 0 -o bud.nvp --json --quiet
end=$(date +%s)
json out.txt "fit --budget, a long trial" \
    'len(d["trials"]) == 1 and d["trials"][0]["stop"] == "budget" and d["stop"] == "budget"'
check "fit --budget 1, a long trial: $((end - start)) s" [ $((end - start)) -le 4 ]
expect 0 "fit --budget, text summary" -- "$B" fit tr3.csv --val va3.csv --budget 1 \
    --hidden 8,8 --steps 50 -o bud.nvp
has out.txt "search:    the best of" "fit --budget, text summary"
expect 2 "fit --budget 0" -- "$B" fit tr3.csv --budget 0 -o x.nvp
expect 2 "fit --budget word" -- "$B" fit tr3.csv --budget soon -o x.nvp

# ------------------------------------------------------------------ info
expect 0 "info" -- "$B" info m.nvp
has out.txt "dimension:       2" "info"
has out.txt "layers:          4 (4 affine couplings)" "info"
has out.txt "16,16" "info hidden widths"
# Version 2: the model holds the header's column names (x, y).
has out.txt "format version:  2" "info"
cp out.txt info.txt
expect 0 "info --json" -- "$B" info --json m.nvp
cp out.txt info.json
json info.json "info --json"
has info.json '"dimension": 2' "info --json"
has info.json '"mask": "10"' "info --json"
json info.json "info --json: the model" \
    'd["file"] == "m.nvp" and d["format_version"] == 2 and d["dimension"] == 2
     and d["base"] == "standard_normal" and d["coupling_layers"] == 4
     and len(d["layers"]) == 4 and d["size"] > 0
     and [l["mask"] for l in d["layers"]] == ["10", "01", "10", "01"]
     and all(l["hidden"] == [16, 16] and l["clamp"] == 5 for l in d["layers"])
     and sum(l["parameters"] for l in d["layers"]) == d["parameters"]
     and len(d["standardisation"]["mean"]) == 2
     and all(s > 0 for s in d["standardisation"]["sd"])'
# The default model: couplings whose masks alternate (two columns), then
# the whitening layer, saved as format 2.
expect 0 "info --json, the default model" -- "$B" info --json json.nvp
json out.txt "info --json, the default model" \
    'd["format_version"] == 2 and d["coupling_layers"] == 8
     and len(d["layers"]) == 9 and d["layers"][8]["kind"] == "linear"
     and d["layers"][8]["parameters"] == 6
     and all(d["layers"][k]["mask"] != d["layers"][k + 1]["mask"] for k in range(7))
     and all(l["clamp"] == 2 and l["hidden"] == [16, 16] for l in d["layers"][:8])'
expect 0 "sample, the default model" -- "$B" sample json.nvp -n 50 --seed 2
lines out.txt 51 "sample, the default model (header + 50 rows)"
numeric out.txt 2 1 "sample, the default model"
expect 0 "score, the default model" -- "$B" score json.nvp moons.csv
lines out.txt 401 "score, the default model"
numeric out.txt 1 1 "score, the default model"
# The text and the JSON give the same numbers (both at 9 digits).
sd_text=$(awk '$1 == 1 && NF == 4 && $2 ~ /[0-9]/ { print $3 }' info.txt)
json info.json "info --json: the sd of column 1 against the text" \
    "'%.9g' % d['standardisation']['sd'][0] == '$sd_text'"
# fit's NLL in original units is the standardised one plus the model's
# log_det.
"$B" info --json json.nvp > json_info.json
json fit.json "fit --json: best_nll_original" \
    'abs(d["best_nll_original"] - d["best_nll"]
         - json.load(open("json_info.json"))["standardisation"]["log_det"]) < 1e-12'

# ---------------------------------------------------------------- sample
expect 0 "sample -o" -- "$B" sample m.nvp -n 500 --seed 5 -o s.csv
# fit stored moons.csv's header names; sample writes them first.
lines s.csv 501 "sample (header + 500 rows)"
check "sample: the header of the training data" [ "$(head -n 1 s.csv)" = "x,y" ]
numeric s.csv 2 1 "sample"
expect 0 "sample to stdout" -- "$B" sample m.nvp -n 500 --seed 5
check "sample: same seed, different rows" cmp -s out.txt s.csv
# A FIFO (like /dev/null or /dev/stdout) is written through, not replaced
# by a regular file; so is a model saved to one.
mkfifo pipe
timeout 60 cat pipe > piped.csv &  # a regression must not hang the test
expect 0 "sample -o FIFO" -- "$B" sample m.nvp -n 500 --seed 5 -o pipe
wait
check "sample -o FIFO: still a FIFO" [ -p pipe ]
check "sample -o FIFO: the same rows" cmp -s piped.csv s.csv
timeout 60 cat pipe > piped.nvp &
expect 0 "fit -o FIFO" -- "$B" fit moons.csv -o pipe --steps 20 --hidden 8,8 --seed 3
wait
check "fit -o FIFO: still a FIFO" [ -p pipe ]
expect 0 "info on a model read from a FIFO's output" -- "$B" info piped.nvp
rm -f pipe piped.csv piped.nvp
# A symbolic link is written through too: the file it names gets the rows
# and the link stays a link.  /dev/stdout is such a link: with standard
# output sent to a file, the rows must land in that file.
echo old > real.csv
ln -s real.csv link.csv
expect 0 "sample -o LINK" -- "$B" sample m.nvp -n 500 --seed 5 -o link.csv
check "sample -o LINK: still a link" [ -L link.csv ]
check "sample -o LINK: the file it names has the rows" cmp -s real.csv s.csv
# (A link of our own to /dev/stdout: a regression then replaces that link,
# never the system's /dev/stdout.)
ln -s /dev/stdout so
expect 0 "sample -o /dev/stdout" -- "$B" sample m.nvp -n 500 --seed 5 -o so
check "sample -o /dev/stdout: the rows reach standard output" cmp -s out.txt s.csv
check "sample -o /dev/stdout: still a link" [ -L so ]
# fit -o /dev/stdout: the model alone goes there, the summary to stderr.
expect 0 "fit -o /dev/stdout" -- "$B" fit moons.csv -o so --steps 20 --hidden 8,8 --seed 3
cp out.txt via_stdout.nvp
has err.txt "saved:" "fit -o /dev/stdout: summary on stderr"
expect 0 "fit -o /dev/stdout: the model loads" -- "$B" info via_stdout.nvp
rm -f link.csv real.csv so via_stdout.nvp
# A replaced file keeps its mode; a new one gets the umask's.
chmod 640 s.csv
expect 0 "sample over a 640 file" -- "$B" sample m.nvp -n 500 --seed 5 -o s.csv
check "sample over a 640 file: mode kept" [ "$(find s.csv -perm 640)" = s.csv ]
(umask 077; "$B" sample m.nvp -n 5 --seed 5 -o private.csv)
check "sample under umask 077: mode 600" [ "$(find private.csv -perm 600)" = private.csv ]
rm -f private.csv
# Interrupted output through a link leaves the old file whole.
echo "old rows" > real.csv
ln -s real.csv link.csv
timeout -s INT 1 "$B" sample m.nvp -n 100000000 -o link.csv > /dev/null 2>&1
check "sample -o LINK interrupted: the old file is intact" [ "$(cat real.csv)" = "old rows" ]
left=$(ls real.csv.* 2>/dev/null)
check "sample -o LINK interrupted: temporary file left: $left" [ -z "$left" ]
rm -f link.csv real.csv
# SIGINT or SIGTERM while sample writes (a billion rows take minutes)
# ends it as the signal does, and leaves neither the file nor its
# temporary (tens of megabytes by then).
for sig in INT:2 TERM:15; do
    want=$((128 + ${sig#*:})); sig=${sig%:*}
    rc=0
    timeout --preserve-status -s $sig 2 "$B" sample m.nvp -n 1000000000 \
        -o big.csv > /dev/null 2>&1 || rc=$?
    check "sample -o, SIG$sig: exit $rc, not $want (killed by it)" [ "$rc" -eq "$want" ]
    left=$(ls big.csv* 2>/dev/null)
    check "sample -o, SIG$sig: left behind: $left" [ -z "$left" ]
    rm -f big.csv*
done

# ----------------------------------------------------------------- score
expect 0 "score" -- "$B" score m.nvp moons.csv -o sc.csv
lines sc.csv 401 "score (header + 400 rows)"
check "score: no header" [ "$(head -n 1 sc.csv)" = "log_density" ]
numeric sc.csv 1 1 "score"
expect 0 "score of samples" -- "$B" score m.nvp s.csv
lines out.txt 501 "score of samples (header + 500 rows)"
numeric out.txt 1 1 "score of samples"
# The man page's example pipeline (EXAMPLES) ranks data rows only.
"$B" score m.nvp moons.csv | grep -vx log_density | nl | sort -g -k2 | head > top.txt
lines top.txt 10 "score pipeline"
check "score pipeline: no header among the ranked rows" sh -c '! grep -q log_density top.txt'
# A finite row so far out that standardising it overflows: the lowest
# log density there is, -inf, not nan.
printf '0.5,3e38\n' > overflow.csv
expect 0 "score a row that overflows when standardised" -- "$B" score m.nvp overflow.csv
check "score: -inf for that row" [ "$(cat out.txt)" = "-inf" ]
# Data so near the ends of float's range that samples would overflow
# (issue 16 item 11): fit refuses them and says what to do, saving nothing.
awk 'BEGIN { for (i = 0; i < 200; i++)
    printf "%.6g,%.6g\n", (i % 20 - 9.5) * 3.4e37, (i % 7 - 3) * 1e37 }' > huge.csv
expect 1 "fit data near the float range" -- "$B" fit huge.csv -o huge.nvp -q
has err.txt "column 1" "fit near the float range: names the column"
has err.txt "divide the column" "fit near the float range: says the cure"
absent huge.nvp "fit near the float range"
awk 'BEGIN { for (i = 0; i < 200; i++)
    printf "%.6g,%.6g\n", (i % 20 - 9.5) * 1e36, (i % 7 - 3) * 1e37 }' > wide.csv
expect 0 "fit wide but representable data" -- "$B" fit wide.csv -o wide.nvp -q --steps 50
expect 0 "sample it" -- "$B" sample wide.nvp -n 2000 -o wide_s.csv
check "sample of wide data: no inf written" sh -c '! grep -qi inf wide_s.csv'
# A model whose scaler reaches past float's range, as fit made before it
# refused such data (standard deviation 2e38): sample refuses to write the
# inf it draws, and leaves no file.
expect 1 "sample beyond the float range" -- "$B" sample "$DATA/near_float_max.nvp" -n 100 --seed 1 -o inf_s.csv
has err.txt "beyond the float range" "sample beyond the float range: says why"
absent inf_s.csv "sample beyond the float range"
printf '50,50\n-40,30\n25,-60\n50,0\n' > far.csv
expect 0 "score outliers" -- "$B" score m.nvp far.csv -o far_sc.csv
lines far_sc.csv 4 "score outliers"
inside=$(awk 'NR > 1 { s += $1; n++ } END { printf "%.6g", s / n }' sc.csv)
outside=$(awk '{ s += $1; n++ } END { printf "%.6g", s / n }' far_sc.csv)
if awk -v a="$inside" -v b="$outside" 'BEGIN { exit !(a > b + 10) }'; then
    ok; else fail "score: data mean $inside not above outlier mean $outside"; fi
printf '0.5,0.25\n' > one_row.txt
score_stdin() { "$B" score m.nvp - < one_row.txt > stdin_sc.txt; }
check "score from stdin" score_stdin
lines stdin_sc.txt 1 "score from stdin"

# ------------------------------------------------ bad input, no output left
{ printf 'x,y\n1,2\n3,4\n# comment\n5,oops\n6,7\n'; } > bad.csv
expect 1 "fit malformed" -- "$B" fit bad.csv -o bad.nvp
has err.txt "bad.csv:5:" "fit malformed: line number"
absent bad.nvp "fit malformed"
printf 'keep\n' > kept.csv
expect 1 "score malformed" -- "$B" score m.nvp bad.csv -o kept.csv
has err.txt "bad.csv:5:" "score malformed: line number"
check "score malformed: output replaced" [ "$(cat kept.csv)" = "keep" ]
expect 1 "score malformed, new file" -- "$B" score m.nvp bad.csv -o new.csv
absent new.csv "score malformed"
printf '1,2\n3,4,5\n' > ragged.csv
expect 1 "fit ragged" -- "$B" fit ragged.csv -o r.nvp
has err.txt "ragged.csv:2:" "fit ragged: line number"
printf '1,2,3\n' > three.csv
expect 1 "score wrong columns" -- "$B" score m.nvp three.csv
has err.txt "three.csv has 3 columns, but the model has 2" "score wrong columns"
printf '1,nan\n' > nan.csv
expect 1 "score nan" -- "$B" score m.nvp nan.csv
has err.txt "nan.csv:1:" "score nan: line number"
# A first line with a mistyped number is an error with its line number,
# not a header taken in silence (score would then print one density
# fewer than the rows); a header has no numeric field.
printf '2.O,3\n0.5,0.25\n1,1\n' > typo.csv
expect 1 "score, a typo in the first row" -- "$B" score m.nvp typo.csv
has err.txt "typo.csv:1: field 1 ('2.O') is not a number" "score, a typo in the first row"
has err.txt "--header" "score, a typo in the first row: the way out"
check "score, a typo in the first row: output" [ ! -s out.txt ]
{ echo '2.O,3'; tail -n +4 moons.csv; } > typo_moons.csv
expect 1 "fit, a typo in the first row" -- "$B" fit typo_moons.csv -o typo.nvp \
    --steps 5 --hidden 8,8
has err.txt "typo_moons.csv:1: field 1 ('2.O') is not a number" "fit, a typo in the first row"
absent typo.nvp "fit, a typo in the first row"
# A byte-order mark before numbers: skipped, and every row scored.
printf '\357\273\2770.5,0.25\n1,1\n' > bom.csv
expect 0 "score, a byte-order mark and numbers" -- "$B" score m.nvp bom.csv
lines out.txt 2 "score, a byte-order mark and numbers"
numeric out.txt 1 0 "score, a byte-order mark and numbers"
printf '\357\273\277x,y\r\n0.5,0.25\r\n' > bom_header.csv
expect 0 "score, a byte-order mark and a header" -- "$B" score m.nvp bom_header.csv
check "score, a byte-order mark and a header: header" [ "$(head -n 1 out.txt)" = log_density ]
lines out.txt 2 "score, a byte-order mark and a header"
# pandas writes an empty name over its index column: still a header.
printf ',y\n0.5,0.25\n' > unnamed.csv
expect 0 "score, a header with an empty name" -- "$B" score m.nvp unnamed.csv
lines out.txt 2 "score, a header with an empty name"
# --header and --no-header say what the first line is.
printf '1,2\n0.5,0.25\n' > numeric_header.csv
expect 0 "score --header" -- "$B" score --header m.nvp numeric_header.csv
check "score --header: header" [ "$(head -n 1 out.txt)" = log_density ]
lines out.txt 2 "score --header"
expect 0 "score --no-header" -- "$B" score m.nvp numeric_header.csv --no-header
lines out.txt 2 "score --no-header"
numeric out.txt 1 0 "score --no-header"
printf 'x,y\n0.5,0.25\n' > header.csv
expect 1 "score --no-header, a header" -- "$B" score --no-header m.nvp header.csv
has err.txt "header.csv:1: field 1 ('x') is not a number" "score --no-header, a header"
expect 0 "score, the last of --no-header --header counts" -- "$B" score \
    --no-header --header m.nvp header.csv
lines out.txt 2 "score, the last of --no-header --header counts"
{ echo 1,2; tail -n +4 moons.csv; } > moons_numeric_header.csv
expect 0 "fit --header" -- "$B" fit moons_numeric_header.csv --header \
    -o nh.nvp --steps 5 --hidden 8,8 --json --quiet
has out.txt '"rows": 400,' "fit --header"
expect 0 "fit, a numeric first line" -- "$B" fit moons_numeric_header.csv \
    -o nh.nvp --steps 5 --hidden 8,8 --json --quiet
has out.txt '"rows": 401,' "fit, a numeric first line"
printf 'v\n1\n2\n3\n' > one.csv
expect 1 "fit one column" -- "$B" fit one.csv -o one.nvp
has err.txt "at least 2" "fit one column"
absent one.nvp "fit one column"
expect 1 "missing model" -- "$B" info missing.nvp
expect 1 "missing data" -- "$B" score m.nvp missing.csv
printf 'not a model' > junk.nvp
expect 1 "corrupt model" -- "$B" sample junk.nvp -n 3 -o j.csv
absent j.csv "corrupt model"
# ------------------------------------------------- column names (issue 17)
# pandas' to_csv(): an index column with an empty header name first.
awk 'BEGIN { srand(7); print ",height,weight,age"
    for (i = 0; i < 300; i++) { h = 160 + 20 * rand()
        printf "%d,%.2f,%.2f,%d\n", i, h, 0.4 * h + 10 * rand(), 20 + int(50 * rand()) } }' > pandas.csv
expect 0 "fit a pandas file" -- "$B" fit pandas.csv -o pd.nvp -q --steps 30 --hidden 8,8
has err.txt "row index" "fit a pandas file: says the index is left out"
"$B" info pd.nvp > pd_info.txt
has pd_info.txt "dimension:       3" "fit a pandas file: the index is not modelled"
has pd_info.txt "format version:  2" "fit a pandas file: names need format 2"
expect 0 "sample a named model" -- "$B" sample pd.nvp -n 20 --seed 1
check "sample: the names as header" [ "$(head -n 1 out.txt)" = "height,weight,age" ]
numeric out.txt 3 1 "sample a named model"
expect 0 "sample --no-header" -- "$B" sample pd.nvp -n 20 --seed 1 --no-header
numeric out.txt 3 0 "sample --no-header"
"$B" info --json pd.nvp > pd_info.json
json pd_info.json "info --json: columns" 'd["columns"] == ["height", "weight", "age"]'
# score finds the columns by name: the index left out, any order.
expect 0 "score a pandas file" -- "$B" score pd.nvp pandas.csv -o pd_sc.csv
lines pd_sc.csv 301 "score a pandas file"
awk -F, 'BEGIN { OFS = "," } { print $4, $2, $3 }' pandas.csv > reordered.csv
expect 0 "score columns in another order" -- "$B" score pd.nvp reordered.csv -o re_sc.csv
check "score by name: same densities in any column order" cmp -s pd_sc.csv re_sc.csv
awk -F, 'BEGIN { OFS = "," } { print $2, $3 }' pandas.csv > two_cols.csv
expect 1 "score without a model column" -- "$B" score pd.nvp two_cols.csv
has err.txt "column 'age' is not in the data's header" "score without a model column"
# A renamed header with the right count: by position, with a warning.
{ echo a,b,c; tail -n +2 pandas.csv | cut -d, -f2-; } > renamed.csv
expect 0 "score a renamed header" -- "$B" score pd.nvp renamed.csv -o rn_sc.csv
has err.txt "taken by position" "score a renamed header: warns"
check "score a renamed header: same densities" cmp -s pd_sc.csv rn_sc.csv
# --columns and --drop, by name or position.
expect 0 "fit --columns" -- "$B" fit pandas.csv -o pc.nvp -q --steps 20 --hidden 8,8 --columns weight,height
expect 0 "sample of --columns" -- "$B" sample pc.nvp -n 5
check "fit --columns: that order" [ "$(head -n 1 out.txt)" = "weight,height" ]
expect 0 "fit --drop" -- "$B" fit pandas.csv -o pdr.nvp -q --steps 20 --hidden 8,8 --drop 1,age
expect 0 "sample of --drop" -- "$B" sample pdr.nvp -n 5
check "fit --drop: the rest" [ "$(head -n 1 out.txt)" = "height,weight" ]
expect 1 "fit --columns unknown" -- "$B" fit pandas.csv -o bad.nvp --columns weight,nope
has err.txt "no column 'nope'" "fit --columns unknown"
expect 1 "fit --columns twice" -- "$B" fit pandas.csv -o bad.nvp --columns 2,height
has err.txt "listed twice" "fit --columns twice"
expect 1 "fit --drop all" -- "$B" fit pandas.csv -o bad.nvp --drop 1,2,3,4
expect 1 "fit --columns and --drop" -- "$B" fit pandas.csv -o bad.nvp --columns 2,3 --drop 1
absent bad.nvp "fit with bad column choices"
# A header whose names cannot be stored: the model is fitted without them.
{ echo x,x,z; tail -n +2 pandas.csv | cut -d, -f2-; } > dup.csv
expect 0 "fit a header with a repeated name" -- "$B" fit dup.csv -o dup.nvp -q --steps 10 --hidden 8,8
has err.txt "repeats an earlier column" "fit a repeated name: warns"
expect 0 "sample of a model without names" -- "$B" sample dup.nvp -n 3
numeric out.txt 3 0 "sample of a model without names: no header"
# ... and a --val file with that header is matched by position, not by
# the repeated name (which once took the first 'x' twice).
{ echo x,x,z; tail -n +2 pandas.csv | cut -d, -f2- | awk -F, 'BEGIN { OFS = "," } { $2 += 100; print }'; } > dup_val.csv
expect 0 "fit --val, a repeated name" -- "$B" fit dup.csv --val dup_val.csv -o dupv.nvp -q --steps 10 --hidden 8,8 --json
json out.txt "fit --val, a repeated name: the shifted column is validated" 'd["initial_nll"] > 100'
expect 1 "fit --columns, a repeated name" -- "$B" fit dup.csv -o bad.nvp --columns x,z
has err.txt "names two columns 'x'" "fit --columns, a repeated name"
expect 1 "fit --columns, an empty item" -- "$B" fit pandas.csv -o bad.nvp --columns "height,,age"
has err.txt "an empty item" "fit --columns, an empty item"
# A name that reads as a number is not stored (sample's header could not
# be read back without --header).
{ echo h,1,a; tail -n +2 pandas.csv | cut -d, -f2-; } > numname.csv
expect 0 "fit --header, a numeric name" -- "$B" fit numname.csv --header -o num.nvp -q --steps 10 --hidden 8,8
has err.txt "reads as a number" "fit, a numeric name: warns"
expect 0 "sample of it" -- "$B" sample num.nvp -n 3
numeric out.txt 3 0 "sample of a model with a numeric name: no header"

# ------------------------------------------------------ fit --given
# y depends on c: y1 = 2c + e1, y2 = -c + e2 (e ~ N(0, 0.3^2)); z is noise
# the model leaves out.  The conditional density's entropy is about 0.43
# nats, the marginal Gaussian's of (y1, y2) about 2.45.
cond_data() {
    awk -v n="$1" -v seed="$2" 'BEGIN {
        srand(seed); pi = atan2(0, -1); print "c,y1,y2,z"
        for (i = 0; i < n; i++) {
            for (k = 0; k < 3; k++) {
                u = rand(); if (u < 1e-12) u = 1e-12
                g[k] = sqrt(-2 * log(u)) * cos(2 * pi * rand())
            }
            printf "%.6f,%.6f,%.6f,%.6f\n", g[0], 2 * g[0] + 0.3 * g[1],
                -g[0] + 0.3 * g[2], rand()
        }
    }'
}
cond_data 800 11 > cond.csv
cond_data 300 12 > cond_test.csv
expect 0 "fit --given" -- "$B" fit cond.csv --drop z --given c -o cond.nvp -q --steps 1500 --hidden 32,32 --json
json out.txt "fit --given: summary" 'd["given_columns"] == 1 and d["given"] == ["c"] and d["columns"] == 3'
# A small conditional table is refitted on the training and validation
# rows (--refit auto below 200 training rows): their context goes along.
cond_data 150 13 > cond_small.csv
expect 0 "fit --given, small table (refit)" -- "$B" fit cond_small.csv --drop z --given c -o cond_small.nvp -q --steps 400 --hidden 16,16 --json
json out.txt "fit --given, small table: refitted on every row" 'd["refit"] is True and d["refit_rows"] == 150'
expect 0 "score the refitted conditional model" -- "$B" score cond_small.nvp cond_test.csv
tail -n +2 out.txt > small_sc.txt
small_ll=$(mean_score small_sc.txt)
check "the refitted conditional model reads its context ($small_ll)" \
    awk -v a="$small_ll" 'BEGIN { exit !(a > -1.6) }'
expect 0 "fit without --given (the same columns)" -- "$B" fit cond.csv --columns y1,y2 -o uncond.nvp -q --steps 300 --hidden 32,32
expect 0 "score a conditional model" -- "$B" score cond.nvp cond_test.csv
tail -n +2 out.txt > cond_sc.txt
lines cond_sc.txt 300 "score a conditional model: one line per row"
expect 0 "score the unconditional model" -- "$B" score uncond.nvp cond_test.csv
tail -n +2 out.txt > uncond_sc.txt
cond_ll=$(mean_score cond_sc.txt)
uncond_ll=$(mean_score uncond_sc.txt)
echo "test_cli: held-out mean log density: given c $cond_ll, without $uncond_ll"
check "log p(y | c) beats log p(y) by over 1.2 nats ($cond_ll vs $uncond_ll)" \
    awk -v a="$cond_ll" -v b="$uncond_ll" 'BEGIN { exit !(a > b + 1.2) }'
# The same rows by position (modelled columns, then given ones, no
# header) and by name in another order: the same densities.
tail -n +2 cond_test.csv | awk -F, 'BEGIN { OFS = "," } { print $2, $3, $1 }' > cond_pos.csv
expect 0 "score a conditional model by position" -- "$B" score cond.nvp cond_pos.csv
check "score by position: the same densities" cmp -s out.txt cond_sc.txt
awk -F, 'BEGIN { OFS = "," } { print $4, $3, $1, $2 }' cond_test.csv > cond_perm.csv
expect 0 "score a conditional model by name" -- "$B" score cond.nvp cond_perm.csv
tail -n +2 out.txt > perm_sc.txt
check "score by name, columns reordered: the same densities" cmp -s perm_sc.txt cond_sc.txt
cut -d, -f2,3 cond_test.csv > no_c.csv
expect 1 "score without the given column" -- "$B" score cond.nvp no_c.csv
has err.txt "the model's column 'c' is not in the data's header" "score without the given column"
tail -n +2 no_c.csv > no_c_pos.csv
expect 1 "score without the given column, by position" -- "$B" score cond.nvp no_c_pos.csv
has err.txt "model reads 3 (2 modelled, then 1 given)" "score without the given column, by position"
# sample --given: N draws per given row, their means near E[y | c].
printf 'c\n-1\n2\n' > given.csv
expect 0 "sample --given" -- "$B" sample cond.nvp --given given.csv -n 400 --seed 3
lines out.txt 801 "sample --given: a header and 400 rows per given row"
check "sample --given: header" [ "$(head -n 1 out.txt)" = "y1,y2" ]
means=$(awk -F, 'NR > 1 { g = NR <= 401 ? 1 : 2; a[g] += $1; b[g] += $2; n[g]++ }
    END { printf "%.3f %.3f %.3f %.3f", a[1] / n[1], b[1] / n[1], a[2] / n[2], b[2] / n[2] }' out.txt)
echo "test_cli: sample --given means (c = -1: y1 y2, c = 2: y1 y2): $means"
check "sample --given: conditional means near (-2, 1) and (4, -2): $means" \
    awk -v m="$means" 'BEGIN { split(m, v, " "); e[1] = -2; e[2] = 1; e[3] = 4; e[4] = -2
        for (i = 1; i <= 4; i++) { d = v[i] - e[i]; if (d < 0) d = -d; if (d > 0.25) exit 1 } }'
expect 0 "sample --given --with-given" -- "$B" sample cond.nvp --given given.csv -n 2 --with-given
check "sample --with-given: header" [ "$(head -n 1 out.txt)" = "y1,y2,c" ]
check "sample --with-given: the given values" [ "$(cut -d, -f3 out.txt | tail -n +2 | tr '\n' ' ')" = "-1 -1 2 2 " ]
# its output scores back by name
cp out.txt with_given.csv
expect 0 "score what sample --with-given wrote" -- "$B" score cond.nvp with_given.csv
numeric out.txt 1 1 "score sample --with-given output"
printf -- '-1\n2\n' > given_pos.csv
expect 0 "sample --given by position" -- "$B" sample cond.nvp --given given_pos.csv -n 400 --seed 3
tail -n +2 out.txt > pos_draws.txt
"$B" sample cond.nvp --given given.csv -n 400 --seed 3 | tail -n +2 > name_draws.txt
check "sample --given by position: the same draws" cmp -s pos_draws.txt name_draws.txt
printf 'q\n1\n' > given_bad.csv
expect 1 "sample --given, the column missing" -- "$B" sample cond.nvp --given given_bad.csv
has err.txt "'c' is not in" "sample --given, the column missing"
expect 1 "sample a conditional model without --given" -- "$B" sample cond.nvp -n 3
has err.txt "give their values with --given" "sample without --given"
expect 1 "sample --given, an unconditional model" -- "$B" sample uncond.nvp --given given.csv
expect 2 "sample --with-given without --given" -- "$B" sample cond.nvp -n 3 --with-given
# info shows the given columns (text and JSON).
expect 0 "info of a conditional model" -- "$B" info cond.nvp
has out.txt "given columns:   1 (c)" "info: the given columns"
expect 0 "info --json of a conditional model" -- "$B" info cond.nvp --json
json out.txt "info --json: the given columns" 'd["context_dimension"] == 1 and d["given_columns"] == ["c"] and d["columns"] == ["y1", "y2"] and len(d["standardisation"]["given_mean"]) == 1 and abs(d["standardisation"]["given_sd"][0] - 1) < 0.15'
expect 0 "info --json of an unconditional model" -- "$B" info uncond.nvp --json
json out.txt "info --json: no given columns" 'd["context_dimension"] == 0 and d["given_columns"] is None'
# --val by name, --given by position; a file without a header.
expect 0 "fit --given with --val (by name)" -- "$B" fit cond.csv --drop 4 --given 1 --val cond_perm.csv -o condv.nvp -q --steps 20 --hidden 8,8
tail -n +2 cond.csv > cond_nohdr.csv
expect 0 "fit --given, no header" -- "$B" fit cond_nohdr.csv --columns 1,2,3 --given 1 -o condn.nvp -q --steps 20 --hidden 8,8
expect 0 "score it by position" -- "$B" score condn.nvp cond_pos.csv
lines out.txt 300 "score a model without names by position"
# Bad --given lists.
expect 1 "fit --given, an unknown name" -- "$B" fit cond.csv --given q -o bad.nvp
has err.txt "--given: no column 'q'" "fit --given, an unknown name"
expect 1 "fit --given, every column" -- "$B" fit cond.csv --columns c,y1 --given y1,c -o bad.nvp
has err.txt "--given lists every column" "fit --given, every column"
expect 1 "fit --given, one column left" -- "$B" fit cond.csv --columns c,y1 --given c -o bad.nvp
has err.txt "--given leaves 1 column" "fit --given, one column left"
expect 1 "fit --given, a repeated column" -- "$B" fit cond.csv --given c,1 -o bad.nvp
has err.txt "listed twice" "fit --given, a repeated column"
expect 1 "fit --given, a dropped column" -- "$B" fit cond.csv --drop z --given z -o bad.nvp
has err.txt "no column 'z'" "fit --given, a dropped column"
expect 2 "fit --given --budget" -- "$B" fit cond.csv --given c --budget 5 -o bad.nvp
has err.txt "--budget with --given is not supported yet" "fit --given --budget"
absent bad.nvp "fit with bad --given lists"

# ------------------------------------------------------- --precision bf16
# A 12-column table whose networks' products qualify for bfloat16 (64
# wide): fit, score and sample in bf16 where the CPU has AVX512-BF16 (else
# a warning and fp32), against fp32.
awk 'BEGIN { srand(7); for (i = 0; i < 600; i++) { a = 2 * rand() - 1; line = "";
    for (j = 0; j < 12; j++) { v = sin(a * (j + 1)) + 0.1 * (rand() - 0.5);
        line = line (j ? "," : "") sprintf("%.5f", v) } print line } }' > wide.csv
if grep -qw avx512_bf16 /proc/cpuinfo 2>/dev/null; then cpu_bf16=yes; else cpu_bf16=no; fi
expect 0 "fit --precision bf16" -- "$B" fit wide.csv -o wide16.nvp --hidden 64,64 --steps 300 --precision bf16 --json -q --threads 1 --base normal
if [ "$cpu_bf16" = yes ]; then
    json out.txt "fit --precision bf16: the summary says bf16" 'd["precision"] == "bf16"'
else
    json out.txt "fit --precision bf16 without AVX512-BF16: fp32" 'd["precision"] == "fp32"'
    has err.txt "no AVX512-BF16" "fit --precision bf16 without AVX512-BF16: the warning"
fi
expect 0 "fit --precision fp32" -- "$B" fit wide.csv -o wide32.nvp --hidden 64,64 --steps 300 --precision fp32 --json -q --threads 1 --base normal
json out.txt "fit --precision fp32: the summary says fp32" 'd["precision"] == "fp32"'
expect 0 "score in fp32" -- "$B" score wide32.nvp wide.csv
mv out.txt wide_lp32.txt
expect 0 "score --precision bf16" -- "$B" score wide32.nvp wide.csv --precision bf16
mv out.txt wide_lp16.txt
# The same model scored both ways: close (a few hundredths of a nat),
# and, with AVX512-BF16, not the same numbers.
if paste -d, wide_lp32.txt wide_lp16.txt | awk -F, -v want="$cpu_bf16" '
    NR == 1 { next }
    { d = $1 - $2; if (d < 0) d = -d; if (d > worst) worst = d; if ($1 != $2) moved++ }
    END { n = NR - 1; if (worst > 0.25) exit 1;
          if (want == "yes" && moved < n / 2) exit 1;
          if (want == "no" && moved != 0) exit 1 }'; then ok; else
    fail "score --precision bf16 against fp32: too far apart, or not moved as expected ($cpu_bf16)"
fi
expect 0 "sample --precision bf16" -- "$B" sample wide16.nvp -n 50 --precision bf16 --seed 3
lines out.txt 50 "sample --precision bf16"
expect 2 "fit --precision fp16" -- "$B" fit wide.csv -o bad.nvp --precision fp16
has err.txt "'fp16' is not fp32 or bf16" "fit --precision fp16"
expect 2 "score --precision with no value" -- "$B" score wide32.nvp wide.csv --precision
absent bad.nvp "fit with a bad --precision"

# ------------------------------------------------------- --base mixture
# Three columns in two clusters (a quarter at -3, the rest at +3 on the
# first): the mixture base finds them, so that even untrained (--steps 0)
# the model beats the full-covariance Gaussian on the validation rows.
awk 'BEGIN { srand(11); for (i = 0; i < 800; i++) { c = (i % 4 == 0) ? -3 : 3;
    u1 = rand(); u2 = rand(); u3 = rand(); u4 = rand();
    n1 = sqrt(-2 * log(1 - u1)) * cos(6.2831853 * u2); n2 = sqrt(-2 * log(1 - u3)) * cos(6.2831853 * u4);
    printf "%.5f,%.5f,%.5f\n", c + n1, n2, 0.5 * n1 + 0.3 * rand() } }' > clusters.csv
expect 0 "fit --base normal --steps 0" -- "$B" fit clusters.csv -o gauss0.nvp --steps 0 --json -q --base normal
json out.txt "fit --base normal: the summary" 'd["base"] == "normal" and d["base_components"] == 1'
mv out.txt gauss0.json
expect 0 "fit --base mixture --steps 0" -- "$B" fit clusters.csv -o mix0.nvp --base mixture --steps 0 --json -q
json out.txt "fit --base mixture: k chosen, at least the two clusters" 'd["base"] == "mixture" and 2 <= d["base_components"] <= 10'
mv out.txt mix0.json
if [ "$have_python" = yes ]; then
    if python3 -c 'import json, sys
g = json.load(open("gauss0.json")); m = json.load(open("mix0.json"))
sys.exit(0 if m["best_nll"] < g["best_nll"] - 0.3 else 1)'; then ok; else
        fail "the untrained mixture model is not clearly better than the Gaussian on the validation rows"
    fi
fi
expect 0 "fit --base mixture (trained)" -- "$B" fit clusters.csv -o mix.nvp --base mixture --steps 300
has err.txt "mixture base of" "fit --base mixture: the choice of k is reported"
expect 0 "fit --base mixture:3" -- "$B" fit clusters.csv -o mix3.nvp --base mixture:3 --steps 50 --json -q
json out.txt "fit --base mixture:3: three components" 'd["base_components"] == 3'
expect 0 "info of a mixture-base model" -- "$B" info mix3.nvp
has out.txt "mixture of 3 Gaussians" "info: the mixture base"
expect 0 "info --json of a mixture-base model" -- "$B" info mix3.nvp --json
json out.txt "info --json: the mixture base" 'd["base"] == "mixture" and d["base_components"] == 3'
expect 0 "score a mixture-base model" -- "$B" score mix.nvp clusters.csv
lines out.txt 800 "score a mixture-base model"
expect 0 "sample a mixture-base model" -- "$B" sample mix.nvp -n 400 --seed 5
# the draws come in both clusters
if tail -n +2 out.txt | awk -F, '$1 < 0 { l++ } $1 > 0 { r++ } END { exit !(l > 40 && r > 200) }'; then ok; else
    fail "sample of a mixture-base model: the draws miss a cluster"
fi
# Without validation rows k comes from BIC on the training rows (their
# likelihood alone would pick 10).
expect 0 "fit --base mixture --val-frac 0" -- "$B" fit clusters.csv -o mixbic.nvp --base mixture --val-frac 0 --steps 0 --json
has err.txt "by BIC on the training rows" "fit --base mixture --val-frac 0: the choice"
json out.txt "fit --base mixture --val-frac 0: k by BIC, the two clusters" '2 <= d["base_components"] <= 4'
for bad in gmm mixture:0 mixture:65 mixture: mixture:x; do
    expect 2 "fit --base $bad" -- "$B" fit clusters.csv -o bad.nvp --base "$bad"
done
absent bad.nvp "fit with a bad --base"

leftovers=
for f in ./*.csv.* ./*.nvp.*; do [ -e "$f" ] && leftovers="$leftovers $f"; done
check "temporary files left:$leftovers" [ -z "$leftovers" ]

checks_finish test_cli
