#!/usr/bin/env bash
# Interleaved pairs: llama-bench and dizuo bench on one file and one test,
# one after the other, N times (the order alternates: L D, D L, L D, ...),
# 2 threads, one measured repetition each (after each tool's own warm-up).
# Prints each pair's t/s and ratio (dizuo / llama.cpp), then the median.
#
#   bench/pairs.sh MODEL.gguf "-p 512 -n 0" 3
#   bench/pairs.sh MODEL.gguf "-p 0 -n 128" 7
#
# LLAMA_BENCH: path of llama-bench (default: llama-bench on PATH);
# DIZUO: path of dizuo (default: build/dizuo); THREADS (default 2).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: bench/pairs.sh MODEL.gguf \"-p P -n N\" [PAIRS]" >&2
    exit 2
fi
model=$1 test=$2 pairs=${3:-5}
llama=${LLAMA_BENCH:-llama-bench}
dizuo=${DIZUO:-$(dirname "$0")/../build/dizuo}
threads=${THREADS:-2}
command -v "$llama" >/dev/null || { echo "pairs.sh: $llama not found (set LLAMA_BENCH)" >&2; exit 1; }
[ -x "$dizuo" ] || { echo "pairs.sh: $dizuo not found (run make, or set DIZUO)" >&2; exit 1; }

# The output is parsed only after the benchmark has exited: a parser started
# alongside (a pipe) competes for the cores while it runs. (A pyenv python3
# shim takes a core for a good part of a second, which halved the measured
# speed of a 0.5 s run.)
avg_ts() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[0]["avg_ts"])' "$1"; }
# shellcheck disable=SC2086 # $test is a list of options
run_llama() { local out; out=$("$llama" -m "$model" $test -t "$threads" -r 1 -o json 2>/dev/null); avg_ts "$out"; }
# shellcheck disable=SC2086
run_dizuo() { local out; out=$("$dizuo" bench -m "$model" $test -t "$threads" -r 1 --no-membw --json 2>/dev/null); avg_ts "$out"; }

ratios=""
for i in $(seq "$pairs"); do
    if (( i % 2 )); then l=$(run_llama); d=$(run_dizuo); else d=$(run_dizuo); l=$(run_llama); fi
    r=$(python3 -c "print(f'{$d / $l:.3f}')")
    printf 'pair %d: llama.cpp %8.2f  dizuo %8.2f  ratio %s\n' "$i" "$l" "$d" "$r"
    ratios="$ratios $r"
done
python3 -c "import statistics as s; r = [float(x) for x in '$ratios'.split()]; \
print(f'median ratio {s.median(r):.3f} (min {min(r):.3f}, max {max(r):.3f}, {len(r)} pairs)')"
