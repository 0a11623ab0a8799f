#!/usr/bin/env bash
# Serving benchmark: dizuo serve against llama-server on one model, with the
# closed-loop load generator of ../shared/tools/loadgen.py (streamed
# /v1/completions, ignore_eos, temperature 0.8). Each round starts one
# server, runs the loads below against it, stops it, then does the same for
# the other server; the order alternates between rounds.
#
#   bench/serve.sh MODEL.gguf [ROUNDS]
#
# Loads: 1 client x 8 requests x 64 tokens (time to first token, single
# stream), 8 clients x 4 x 128 (aggregate tokens/s), 32 clients x 2 x 64
# (errors under overload). Both servers: THREADS threads (default 2), 8
# parallel sequences, 8192 positions of KV cache in all (llama-server
# -np 8 -c 8192; dizuo --parallel 8 --kv-blocks 512 of 16 positions).
#
# LLAMA_SERVER: llama-server binary (default: on PATH); DIZUO: dizuo binary
# (default build/dizuo); LOADGEN (default ../shared/tools/loadgen.py).
# Prints one line per load and server, then the ratios dizuo / llama-server.
set -euo pipefail
if [ $# -lt 1 ]; then
    echo "usage: bench/serve.sh MODEL.gguf [ROUNDS]" >&2
    exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
model=$1 rounds=${2:-2}
llama=${LLAMA_SERVER:-llama-server}
dizuo=${DIZUO:-$here/../build/dizuo}
loadgen=${LOADGEN:-$here/../../shared/tools/loadgen.py}
threads=${THREADS:-2}
command -v "$llama" >/dev/null || { echo "serve.sh: $llama not found (set LLAMA_SERVER)" >&2; exit 1; }
[ -x "$dizuo" ] || { echo "serve.sh: $dizuo not found (run make, or set DIZUO)" >&2; exit 1; }
[ -f "$loadgen" ] || { echo "serve.sh: $loadgen not found (set LOADGEN)" >&2; exit 1; }

work=$(mktemp -d)
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
key=$("$dizuo" keys create --db "$work/ledger.db" --tenant bench)
port=18080

wait_ready() { # URL
    for _ in $(seq 600); do
        curl -sf "$1" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || { echo "serve.sh: the server exited; its log:" >&2; cat "$work/server.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "serve.sh: the server did not become ready" >&2
    exit 1
}

start() { # llama|dizuo
    port=$((port + 1))
    if [ "$1" = llama ]; then
        "$llama" -m "$model" -t "$threads" -np 8 -c 8192 --host 127.0.0.1 --port "$port" >"$work/server.log" 2>&1 &
        pid=$!
        wait_ready "http://127.0.0.1:$port/health"
    else
        "$dizuo" serve -m "$model" -t "$threads" --parallel 8 --kv-blocks 512 --host 127.0.0.1 --port "$port" \
            --db "$work/ledger.db" >"$work/server.log" 2>&1 &
        pid=$!
        wait_ready "http://127.0.0.1:$port/ready"
    fi
}

stop() { kill "$pid"; wait "$pid" 2>/dev/null || true; pid=""; }

# The load generator's summary is kept and parsed after it exits (a parser
# running alongside would take a core from the servers).
load() { # server conc per max_tokens
    local out
    out=$(python3 "$loadgen" "http://127.0.0.1:$port" "$2" "$3" "$4" "$key" default 2>"$work/loadgen.err")
    printf '%-6s c=%-3s %s\n' "$1" "$2" "$out" | tee -a "$work/results"
}

for r in $(seq "$rounds"); do
    if (( r % 2 )); then order="llama dizuo"; else order="dizuo llama"; fi
    for s in $order; do
        start "$s"
        load "$s" 1 8 64
        load "$s" 8 4 128
        load "$s" 32 2 64
        stop
    done
done

python3 - "$work/results" <<'EOF'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    server, conc = line.split()[0], int(re.search(r"c=(\d+)", line).group(1))
    kv = dict(re.findall(r"(\w+)=([\d.]+)", line))
    rows.setdefault((server, conc), []).append(kv)
for conc in (1, 8, 32):
    d, l = rows.get(("dizuo", conc), []), rows.get(("llama", conc), [])
    if not d or not l: continue
    med = lambda xs, k: statistics.median(float(x[k]) for x in xs)
    print(f"c={conc}: tok/s dizuo {med(d,'tok_per_s'):.1f} llama-server {med(l,'tok_per_s'):.1f} "
          f"ratio {med(d,'tok_per_s')/med(l,'tok_per_s'):.2f}; median TTFT ms dizuo {med(d,'ttft_med_ms'):.0f} "
          f"llama-server {med(l,'ttft_med_ms'):.0f}; errors dizuo {sum(int(x['errors']) for x in d)} "
          f"llama-server {sum(int(x['errors']) for x in l)}")
EOF
