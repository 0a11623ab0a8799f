#!/bin/sh
# make-model.sh: the recipe of models/dizuo-tang.gguf, the model dizuo ships.
#
# Trains, with dizuo alone, a small llama model on classical Chinese poetry
# (the 300 Tang poems, 100 Song poems and the verse of Debian's `fortunes-zh`
# package), from a fresh start:
#   1. installs fortunes-zh when its files are missing (apt-get, as root;
#      otherwise prints the command and stops);
#   2. extracts the poems from the fortune files into one UTF-8 text;
#   3. trains a byte-level BPE vocabulary (`dizuo tokenizer-train`);
#   4. trains the model (`dizuo train`, fixed seed and hyper-parameters)
#      and writes it as F16 GGUF;
#   5. writes two samples next to the model's work files.
#
# Environment (all optional):
#   DIZUO    the dizuo program (default build/dizuo)
#   OUT      the model to write (default models/dizuo-tang.gguf)
#   WORK     work directory: corpus, tokenizer, log, checkpoints, samples
#            (default build/model)
#   THREADS  training threads (default 2; the weights depend on it)
#   STEPS    optimizer steps (default 900, the shipped model's)
# Run from the repository root: scripts/make-model.sh  (or `make model`).
set -eu

DIZUO=${DIZUO:-build/dizuo}
OUT=${OUT:-models/dizuo-tang.gguf}
WORK=${WORK:-build/model}
THREADS=${THREADS:-2}
STEPS=${STEPS:-900}
FORTUNES=/usr/share/games/fortunes
PKG=fortunes-zh

say() { printf 'make-model: %s\n' "$*" >&2; }

if [ ! -x "$DIZUO" ]; then
    say "$DIZUO not found: build dizuo first (make build)"
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    say "python3 is needed to extract the corpus: apt-get install python3"
    exit 1
fi

# 1. The corpus package.
if [ ! -f "$FORTUNES/tang300" ] || [ ! -f "$FORTUNES/song100" ] || [ ! -f "$FORTUNES/chinese" ]; then
    if [ "$(id -u)" = 0 ]; then
        say "installing $PKG"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$PKG" ||
            { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$PKG"; }
    else
        say "the corpus comes from the Debian package $PKG, which is not installed; run:"
        say "    sudo apt-get install $PKG"
        exit 1
    fi
fi

mkdir -p "$WORK" "$(dirname "$OUT")"
CORPUS=$WORK/tang-corpus.txt
TOK=$WORK/tang-tok.gguf

# 2. The corpus. Fortune files are UTF-8 text with ANSI colour codes, one
# fortune per block, blocks separated by lines holding only "%". Every poem
# becomes
#     《title》
#     作者：author
#     lines of the poem
# and poems are separated by an empty line (`dizuo train --doc-sep '\n\n'`
# ends each with the end-of-text token, so the model learns to stop).
# From `chinese` (a mixed file: Debian manuals, proverbs, modern prose,
# poetry) only verse is kept: a fortune attributed "-- AUTHOR《TITLE》" whose
# lines are Han characters and Chinese punctuation only, no clause longer
# than 11 characters, and not by a modern author.
say "extracting the corpus into $CORPUS"
python3 - "$FORTUNES" > "$CORPUS.tmp" <<'EOF'
import re, sys

root = sys.argv[1] + "/"
ESC = re.compile(r"\x1b\[[0-9;]*m")
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
PUNCT = "，。？！；：、“”‘’"
VERSE = re.compile("^[" + HAN + PUNCT + "]+$")
CLAUSE = re.compile("[" + PUNCT + "]")
ATTR = re.compile(r"^\s*--\s*([" + HAN + r"]{1,4})\s*《([^》]+)》\s*$")
MODERN = {"鲁迅", "毛泽东", "陈毅", "冰心", "赫拉利"}


def fortunes(name):
    """The fortunes of a file: lists of non-empty stripped lines."""
    with open(root + name, encoding="utf-8") as f:   # strict: must be UTF-8
        text = ESC.sub("", f.read())
    out, cur = [], []
    for line in text.split("\n") + ["%"]:
        if line.strip() == "%":
            if cur:
                out.append(cur)
            cur = []
        elif line.strip():
            cur.append(line.strip())
    return out


def poem(title, author, body):
    return "《%s》\n作者：%s\n%s" % (title.strip(), author.strip(), "\n".join(body))


docs, counts = [], {}
for p in fortunes("tang300"):            # 《title》 / 作者：author / lines
    t = re.match(r"^《(.+)》$", p[0])
    a = re.match(r"^作者：(.+)$", p[1]) if len(p) > 2 else None
    if t and a:
        docs.append(poem(t.group(1), a.group(1), p[2:]))
counts["tang300"] = len(docs)
for p in fortunes("song100"):            # 题目:《title》 / 作者:author（dates） / lines
    t = re.match(r"^题目[:：]\s*《(.+?)》(.*)$", p[0])
    a = re.match(r"^作者[:：]\s*([^（(]+)", p[1]) if len(p) > 2 else None
    if t and a:
        docs.append(poem(t.group(1) + t.group(2).strip(), a.group(1), p[2:]))
counts["song100"] = len(docs) - counts["tang300"]
n = len(docs)
for p in fortunes("chinese"):            # lines / -- author《title》
    m = ATTR.match(p[-1]) if len(p) > 1 else None
    if not m or m.group(1) in MODERN:
        continue
    body = p[:-1]
    if not all(VERSE.match(l) for l in body):
        continue
    clauses = [c for l in body for c in CLAUSE.split(l) if c]
    if clauses and max(len(c) for c in clauses) <= 11:
        docs.append(poem(m.group(2), m.group(1), body))
counts["chinese"] = len(docs) - n
sys.stdout.write("\n\n".join(docs) + "\n")
sys.stderr.write("make-model: poems: %s\n" % counts)
EOF
mv "$CORPUS.tmp" "$CORPUS"
say "corpus: $(wc -m < "$CORPUS") characters, $(wc -c < "$CORPUS") bytes"

# 3. The vocabulary: 4096 byte-level BPE tokens (nearly every character of
# the corpus becomes one token; frequent pairs such as 何处 one more).
"$DIZUO" tokenizer-train -q --vocab-size 4096 --name dizuo-tang -o "$TOK" "$CORPUS"

# 4. The model: llama, 4 layers, width 256, 8 heads (4 KV heads), SwiGLU
# 768, context 256, tied embeddings: 4.2 M parameters, 8.4 MB as F16.
# 900 steps of 8 x 256 tokens (1.8 M tokens, ~15.8 passes over the corpus).
"$DIZUO" train --arch llama --dim 256 --layers 4 --heads 8 --kv-heads 4 --ffn 768 \
    --ctx 256 --tied --tokenizer "$TOK" --data "$CORPUS" --doc-sep '\n\n' \
    --batch 8 --seq 256 --steps "$STEPS" --lr 2e-3 --warmup 30 --schedule cosine \
    --beta1 0.9 --beta2 0.95 --weight-decay 0.1 --clip 1 --seed 20250 -t "$THREADS" \
    --save-every 100 --checkpoint-dir "$WORK/tang-ckpt" --log "$WORK/tang-train.jsonl" \
    --out-type f16 -o "$OUT"

# 5. Samples: greedy, and sampled with a fixed seed.
{
    echo "== greedy: $DIZUO run -m $OUT -p 《春晓》… -n 64 --temp 0"
    "$DIZUO" run -m "$OUT" -p "$(printf '《春晓》\n作者：孟浩然\n')" -n 64 --temp 0 -t "$THREADS"
    echo
    echo "== sampled: -p 《秋夜》… -n 64 --temp 0.8 --seed 1"
    "$DIZUO" run -m "$OUT" -p "$(printf '《秋夜》\n作者：李白\n')" -n 64 --temp 0.8 --seed 1 -t "$THREADS"
    echo
} > "$WORK/tang-sample.txt" 2>/dev/null
cat "$WORK/tang-sample.txt"
say "wrote $OUT ($(wc -c < "$OUT") bytes), ${OUT%.gguf}.loss.svg and $WORK/tang-sample.txt"
