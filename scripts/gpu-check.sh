#!/usr/bin/env bash
# gpu-check.sh: the check of the CUDA backend on a machine with an NVIDIA GPU,
# in one run (docs/cuda.md). Builds dizuo with -DDZ_CUDA=ON, then:
#   gpus         nvidia-smi -L and the driver's view of the GPUs
#   devices      dizuo devices (cuda:0 must be listed)
#   conformance  dizuo conformance --device cuda:0 --tier I: every case native
#   test_cuda    tests/test_cuda with DZ_REQUIRE_CUDA=1: buffers, error paths,
#                the kernels on the host and the tier-I suite on cuda:0
#   logits       dizuo logits on cuda:0 for the synthetic model in all 14 formats
#                against llama.cpp's (../shared/conformance), within the limits of
#                ../shared/README.md
#   bench-*      dizuo bench on cuda:0 and on the CPU: stories260K, and a model
#                of TinyLlama 1.1B's shape with random weights in F16 and Q4_0
# Each step writes $OUT/<step>.txt; $OUT/summary.txt has a line per step
# (status, seconds) followed by the key numbers.
#
# Environment (all optional):
#   OUT         where results go (default build-gpu/out)
#   BUILD       build directory (default build-gpu)
#   SHARED      the reference data (default $DZ_SHARED_DIR, else ../shared or ./shared)
#   CUDA_ARCHS  CMAKE_CUDA_ARCHITECTURES (default "native": this machine's GPUs)
#   BIG         0 skips the 1.1B-shape benchmark (default 1)
#   DEVICE      the device under test (default cuda:0; another name tries the
#               script's steps on a machine without a GPU)
# Exit status: 0 when every step passed, 1 otherwise.
set -u

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build-gpu}
OUT=${OUT:-$BUILD/out}
CUDA_ARCHS=${CUDA_ARCHS:-native}
BIG=${BIG:-1}
DEVICE=${DEVICE:-cuda:0}
JOBS=$(nproc 2>/dev/null || echo 4)
mkdir -p "$OUT" "$BUILD"
SUMMARY=$OUT/summary.txt
: >"$SUMMARY"
FAILED=0

if [ -z "${SHARED:-}" ]; then
    for dir in "${DZ_SHARED_DIR:-}" "$ROOT/../shared" "$ROOT/shared"; do
        if [ -n "$dir" ] && [ -d "$dir/conformance" ]; then SHARED=$(cd "$dir" && pwd); break; fi
    done
fi
SHARED=${SHARED:-}

# step NAME SECONDS COMMAND...: runs it with a time limit (none for a shell
# function, whose commands have their own), output in $OUT/NAME.txt.
step() {
    local name=$1 limit=$2 start rc
    shift 2
    echo "== $name: $*"
    start=$(date +%s)
    if [ "$(type -t "$1")" = function ]; then
        "$@" >"$OUT/$name.txt" 2>&1
    else
        timeout "$limit" "$@" >"$OUT/$name.txt" 2>&1
    fi
    rc=$?
    local took=$(($(date +%s) - start))
    if [ $rc -eq 0 ]; then
        printf '%-24s ok      %4ds\n' "$name" "$took" | tee -a "$SUMMARY"
    else
        printf '%-24s FAILED  %4ds  (exit %d; see %s.txt)\n' "$name" "$took" "$rc" "$name" | tee -a "$SUMMARY"
        tail -n 15 "$OUT/$name.txt"
        FAILED=1
    fi
    return $rc
}

skip() { printf '%-24s skipped (%s)\n' "$1" "$2" | tee -a "$SUMMARY"; }

step gpus 60 sh -c 'nvidia-smi -L && { nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap --format=csv || true; }'

if ! step configure 300 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDZ_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES="$CUDA_ARCHS"; then
    # "native" needs CMake to find the GPU at configure time; sm_90 is the H100/H200's.
    [ "$CUDA_ARCHS" = native ] || exit 1
    step configure-sm90 300 cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DDZ_CUDA=ON \
        -DCMAKE_CUDA_ARCHITECTURES=90 || exit 1
    FAILED=0
fi
step build 600 cmake --build "$BUILD" -j "$JOBS" --target dizuo test_cuda || { echo "build failed"; exit 1; }
DIZUO=$BUILD/dizuo

step devices 60 "$DIZUO" devices
if ! grep -q "^$DEVICE " "$OUT/devices.txt"; then
    printf '%-24s FAILED  (%s is not listed)\n' devices-has-device "$DEVICE" | tee -a "$SUMMARY"
    FAILED=1
fi
step conformance 300 "$DIZUO" conformance --device "$DEVICE" --tier I --csv "$OUT/conformance.csv"
DZ_REQUIRE_CUDA=1 DZ_SHARED_DIR=$SHARED step test_cuda 300 "$BUILD/tests/test_cuda"

# ---- logits of the synthetic model in every format, against llama.cpp's ----
compare_logits() { # REF OUT MAX_NMSE MIN_TOP1
    python3 - "$@" <<'EOF'
import array, struct, sys
def read(path):
    raw = open(path, "rb").read()
    n, v = struct.unpack_from("<ii", raw, 0)
    values = array.array("f")
    values.frombytes(raw[8 + 4 * n:])
    return n, v, values
ref_path, out_path, max_nmse, min_top1 = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
n, v, ref = read(ref_path)
n2, v2, out = read(out_path)
if (n, v) != (n2, v2):
    sys.exit("shape %dx%d, the reference has %dx%d" % (n2, v2, n, v))
err = sum((a - b) ** 2 for a, b in zip(out, ref))
norm = sum(b * b for b in ref)
nmse = err / norm if norm else float("inf")
agree = 0
for t in range(n):
    r, o = ref[t * v:(t + 1) * v], out[t * v:(t + 1) * v]
    agree += max(range(v), key=r.__getitem__) == max(range(v), key=o.__getitem__)
top1 = agree / n
ok = nmse <= max_nmse and top1 >= min_top1
print("NMSE %.3g (limit %g), top-1 %.1f%% (at least %.0f%%): %s" % (nmse, max_nmse, 100 * top1, 100 * min_top1,
                                                                   "ok" if ok else "FAIL"))
sys.exit(0 if ok else 1)
EOF
}

logits_all() {
    local failed=0 type nmse top1
    while read -r type nmse top1; do
        local model=$SHARED/conformance/synth-tiny-$type.gguf out=$OUT/logits-$type
        printf '%-7s ' "$type"
        if ! timeout 120 "$DIZUO" logits -m "$model" --tokens "$SHARED/conformance/tokens.txt" -o "$out" --device "$DEVICE" \
            >/dev/null 2>"$out.err"; then
            echo "dizuo logits failed: $(tail -n 1 "$out.err")"
            failed=1
            continue
        fi
        compare_logits "$SHARED/conformance/$type.logits" "$out" "$nmse" "$top1" || failed=1
        rm -f "$out" "$out.err"
    done <<'LIMITS'
F32 1e-8 0.98
F16 1e-4 0.95
BF16 1e-4 0.95
Q8_0 5e-4 0.95
Q4_0 5e-4 0.95
Q4_1 5e-4 0.95
Q5_0 5e-4 0.95
Q5_1 5e-4 0.95
Q2_K 2e-3 0.90
Q3_K_M 2e-3 0.90
Q4_K_M 5e-4 0.95
Q5_K_M 5e-4 0.95
Q6_K 5e-4 0.95
IQ4_NL 2e-3 0.90
LIMITS
    return "$failed"
}

if [ -z "$SHARED" ]; then
    skip logits "no ../shared"
elif ! command -v python3 >/dev/null; then
    skip logits "no python3 to compare"
else
    step logits 300 logits_all
fi

# ---- speed: cuda:0 against the CPU ----
bench_pair() { # NAME MODEL P N R
    local name=$1 model=$2 p=$3 n=$4 r=$5 dev
    for dev in "$DEVICE" cpu; do
        step "bench-$name-${dev%%:*}" 300 "$DIZUO" bench -m "$model" -p "$p" -n "$n" -r "$r" --no-membw --device "$dev"
    done
}

if [ -n "$SHARED" ]; then
    bench_pair stories260K "$SHARED/models/stories260K.gguf" 128 128 3
    if [ "$BIG" != 0 ]; then
        BIG_F16=$BUILD/llama-1.1b-shape-f16.gguf BIG_Q4=$BUILD/llama-1.1b-shape-q4_0.gguf
        [ -f "$BIG_F16" ] || step synth-1.1b 300 "$DIZUO" synth --dim 2048 --layers 22 --heads 32 --kv-heads 4 \
            --ffn 5632 --vocab-from "$SHARED/models/stories260K.gguf" -q -o "$BIG_F16"
        [ -f "$BIG_Q4" ] || step quantize-1.1b 300 "$DIZUO" quantize "$BIG_F16" "$BIG_Q4" Q4_0
        [ -f "$BIG_F16" ] && bench_pair llama1.1b-F16 "$BIG_F16" 512 64 2
        [ -f "$BIG_Q4" ] && bench_pair llama1.1b-Q4_0 "$BIG_Q4" 512 64 2
    else
        skip bench-1.1b "BIG=0"
    fi
else
    skip bench "no ../shared"
fi

# ---- the numbers ----
{
    echo
    echo "# conformance ($DEVICE, tier I)"
    tail -n 3 "$OUT/conformance.txt" 2>/dev/null
    echo "# test_cuda"
    tail -n 3 "$OUT/test_cuda.txt" 2>/dev/null
    echo "# logits ($DEVICE vs llama.cpp)"
    cat "$OUT/logits.txt" 2>/dev/null
    echo "# bench (t/s)"
    for f in "$OUT"/bench-*.txt; do
        [ -f "$f" ] || continue
        echo "## $(basename "$f" .txt)"
        grep -E '^\| .*(pp|tg)[0-9]' "$f"
    done
} >>"$SUMMARY"
echo
cat "$SUMMARY"
exit $FAILED
