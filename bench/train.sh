#!/bin/sh
# bench/train.sh: dizuo train against llm.c's train_gpt2 (CPU), interleaved, one session.
#
#   DIZUO=build/dizuo bench/train.sh TRAIN_GPT2 CKPT.bin SHARD.bin [PAIRS] [STEPS]
#
# TRAIN_GPT2  llm.c's train_gpt2, built with its own Makefile outside this repository
#             (`make train_gpt2`: -Ofast -march=native, OpenMP when the compiler has it).
#             This script does not build it.
# CKPT.bin    a GPT-2 124M checkpoint in llm.c's format (magic 20240326, version 3):
#             random init is enough; its shape must be 12 layers, 768 dim, 12 heads,
#             vocab 50257 (padded 50304), 1024 positions.
# SHARD.bin   an llm.c token shard (magic 20240520): both programs train on it.
# PAIRS       how many A/B pairs (default 2); the order alternates L D, D L, ...
# STEPS       measured steps per run, 1..9 (default 5); each run does STEPS+1 steps, the
#             first is warm-up and is not counted.
#
# Shape: GPT-2 124M (12 layers, 768 dim, 12 heads, FFN 3072, 1024 positions, vocab 50257),
# B=4, T=64, 2 threads. train_gpt2 has B=4, T=64 and its file names built in: it runs in a
# scratch directory holding links named gpt2_124M.bin and
# dev/data/tinyshakespeare/tiny_shakespeare_{train,val}.bin (both to SHARD). Its own
# loop also estimates the validation loss every 10 steps and samples text every 20; both
# lie outside the time it prints per step, and the script stops it after STEPS+1 steps
# (before step 10). dizuo runs `dizuo train --arch gpt2 ... --no-shuffle -t 2` with a
# random init (seed 1234) of the same shape; its --log gives tokens/s per step, measured
# over the same work as train_gpt2's (zero gradients, forward, backward, AdamW update).
#
# Output: one line per run, "llm.c" or "dizuo", then the median ms/step of its steady
# steps (1..STEPS), and at the end the median of the per-pair ratios dizuo / llm.c.
set -eu

[ $# -ge 3 ] || { sed -n 2,30p "$0"; exit 2; }
TRAIN_GPT2=$(readlink -f "$1"); CKPT=$(readlink -f "$2"); SHARD=$(readlink -f "$3")
PAIRS=${4:-2}; STEPS=${5:-5}
DIZUO=${DIZUO:-build/dizuo}
if [ ! -x "$TRAIN_GPT2" ] || [ ! -f "$CKPT" ] || [ ! -f "$SHARD" ]; then
    echo "train.sh: missing input" >&2; exit 2
fi
if [ "$STEPS" -lt 1 ] || [ "$STEPS" -gt 9 ]; then
    echo "train.sh: STEPS must be 1..9 (train_gpt2 validates at step 10)" >&2; exit 2
fi

W=$(mktemp -d /tmp/dz-train-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT
mkdir -p "$W/llmc/dev/data/tinyshakespeare"
ln -s "$CKPT" "$W/llmc/gpt2_124M.bin"
ln -s "$SHARD" "$W/llmc/dev/data/tinyshakespeare/tiny_shakespeare_train.bin"
ln -s "$SHARD" "$W/llmc/dev/data/tinyshakespeare/tiny_shakespeare_val.bin"

median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# llm.c: run until it has printed step STEPS, then stop it; ms of steps 1..STEPS.
run_llmc() {
    out="$W/llmc.$1.txt"
    ( cd "$W/llmc" && OMP_NUM_THREADS=2 exec stdbuf -oL "$TRAIN_GPT2" ) >"$out" 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && ! grep -q "^step $STEPS:" "$out"; do sleep 0.5; done
    kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
    sed -n 's/^step \([0-9]*\): .*took \([0-9.]*\) ms.*/\1 \2/p' "$out" | awk '$1 >= 1 {print $2}' | median
}

# dizuo: STEPS+1 steps; ms of steps 2..STEPS+1 (the log counts from 1).
run_dizuo() {
    log="$W/dizuo.$1.jsonl"
    "$DIZUO" train --arch gpt2 --dim 768 --layers 12 --heads 12 --ffn 3072 --ctx 1024 --vocab 50257 \
        --data "$SHARD" --batch 4 --seq 64 --steps $((STEPS + 1)) --no-shuffle -t 2 \
        --log "$log" -o "$W/dizuo.gguf" >"$W/dizuo.$1.txt" 2>&1
    sed -n 's/.*"step": \([0-9]*\),.*"tokens_per_s": \([0-9.]*\).*/\1 \2/p' "$log" |
        awk '$1 >= 2 {printf "%.1f\n", 256000 / $2}' | median
}

ratios=""
i=1
while [ "$i" -le "$PAIRS" ]; do
    if [ $((i % 2)) -eq 1 ]; then
        l=$(run_llmc "$i"); echo "pair $i  llm.c  $l ms/step"
        d=$(run_dizuo "$i"); echo "pair $i  dizuo  $d ms/step"
    else
        d=$(run_dizuo "$i"); echo "pair $i  dizuo  $d ms/step"
        l=$(run_llmc "$i"); echo "pair $i  llm.c  $l ms/step"
    fi
    r=$(awk -v d="$d" -v l="$l" 'BEGIN {printf "%.3f", d / l}')
    echo "pair $i  ratio dizuo/llm.c ms/step = $r  (dizuo $(awk -v d="$d" 'BEGIN {printf "%.1f", 256000 / d}') tok/s, llm.c $(awk -v l="$l" 'BEGIN {printf "%.1f", 256000 / l}') tok/s)"
    ratios="$ratios $r"
    i=$((i + 1))
done
# shellcheck disable=SC2086 # $ratios is a list of words
echo "median ratio dizuo/llm.c ms/step: $(printf '%s\n' $ratios | median)  (pairs:$ratios)"
