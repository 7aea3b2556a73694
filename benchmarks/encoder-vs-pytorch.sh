#!/usr/bin/env bash
# peft4j against PyTorch on the same CPU: one training step and forward-only inference of a MiniLM-sized
# encoder (EncoderStepBench, EncoderInferenceBench; peer: benchmarks/peer/torch_encoder.py), plus the
# 4-bit kernel ratios (Nf4MatmulBench, InferenceBench at batch 32, FineTuneWaysBench QLoRA with Adam and
# Adam8bit), at 2 threads and at 1 thread (pinned to one core), and the LoRA and head-only steps again
# under OMP_WAIT_POLICY=PASSIVE and with peft4j's OpenMP setting switched off, so the default environment
# can be compared with both. Prints the machine card and one Markdown table of medians and ratios.
#
# Usage: benchmarks/encoder-vs-pytorch.sh [--quick] [--no-build] [--threads "2 1"]
#   --quick      one short measurement per benchmark (checks the script, not the machine)
#   --no-build   use the existing benchmarks/target/benchmarks.jar
#   --threads    thread counts to run (default "2 1")
# Environment: TORCH_PYTHON (a python with torch; default: the first of /usr/bin/python3, python3 that
# imports it; without one, the PyTorch columns stay empty), MVN_ARGS (default -o), RT=1 to run every
# measurement under SCHED_RR (root only; approximates a quiet machine on a shared one: other processes
# then get what real-time tasks leave, at least 5% of each core), JMH_IGNORE_LOCK=1 to run while another
# JMH run holds /tmp/jmh.lock (on a shared machine).
# Takes about 23 minutes on 2 cores (about 13 with --threads 2; --quick about 11). Raw output: benchmarks/target/encoder-vs-pytorch/
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/benchmarks/target/encoder-vs-pytorch
JAR=$ROOT/benchmarks/target/benchmarks.jar
QUICK=0
BUILD=1
THREADS="2 1"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --no-build) BUILD=0 ;;
    --threads) THREADS=$2; shift ;;
    *) echo "unknown argument $1; see the header of $0" >&2; exit 2 ;;
  esac
  shift
done
mkdir -p "$OUT"
rm -f "$OUT"/*.json "$OUT"/*.txt "$OUT"/*.log

if [[ $BUILD == 1 ]]; then
  (cd "$ROOT" && mvn -q ${MVN_ARGS:--o} -B -pl benchmarks -am package -DskipTests)
fi
[[ -f $JAR ]] || { echo "no $JAR; run without --no-build" >&2; exit 1; }

PY=""
for p in ${TORCH_PYTHON:-} /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch' >/dev/null 2>&1; then PY=$p; break; fi
done
PREFIX=()
if [[ ${RT:-0} == 1 ]]; then PREFIX=(chrt -r 10); fi
LOCK=()
if [[ ${JMH_IGNORE_LOCK:-0} == 1 ]]; then LOCK=(-Djmh.ignoreLock=true); fi

# JMH run: jmh THREADS NAME [env assignments...] -- jmh arguments
jmh() {
  local t=$1 name=$2; shift 2
  local envs=()
  while [[ $1 != -- ]]; do envs+=("$1"); shift; done
  shift
  local pin=()
  if [[ $t == 1 ]]; then pin=(taskset -c 0); envs+=(OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1); fi
  local quick=()
  if [[ $QUICK == 1 ]]; then
    # replace the run's own warm-up and measurement settings by one short iteration each
    local keep=()
    while [[ $# -gt 0 ]]; do
      case "$1" in -wi|-w|-i|-r) shift 2 ;; *) keep+=("$1"); shift ;; esac
    done
    set -- "${keep[@]}"
    quick=(-wi 1 -w 1 -i 1 -r 1)
  fi
  echo "[$(date +%T)] JMH $name, $t thread(s)" >&2
  env "${envs[@]}" "${PREFIX[@]}" "${pin[@]}" java "${LOCK[@]}" -jar "$JAR" "$@" "${quick[@]}" \
      -rf json -rff "$OUT/$name-t$t.json" >"$OUT/$name-t$t.log" 2>&1 \
    || { echo "JMH $name failed; see $OUT/$name-t$t.log" >&2; exit 1; }
}

torch() {
  local t=$1 mode=$2 steps=$3 batch=$4
  [[ -n $PY ]] || return 0
  [[ $QUICK == 1 ]] && steps=3
  local pin=()
  if [[ $t == 1 ]]; then pin=(taskset -c 0 env OMP_NUM_THREADS=1); fi
  echo "[$(date +%T)] PyTorch $mode batch $batch, $t thread(s)" >&2
  "${PREFIX[@]}" "${pin[@]}" "$PY" "$ROOT/benchmarks/peer/torch_encoder.py" "$mode" "$t" "$steps" "$batch" \
    >>"$OUT/torch-t$t.txt"
}

# The PyTorch peer runs just before and just after peft4j's encoder run, and the table takes the mean of
# the two medians, so a drift of the machine's speed over the encoder run (one-thread medians of either
# library move by up to 8 % within half an hour) weighs on both sides of a ratio alike.
peers() {
  local t=$1
  torch "$t" lora-qv 20 8
  torch "$t" full 15 8
  torch "$t" head 20 8
  torch "$t" forward 20 1
  torch "$t" forward 10 32
}

START=$(date +%s)
for t in $THREADS; do
  peers "$t"
  jmh "$t" encoder -- 'EncoderStepBench|EncoderInferenceBench'
  peers "$t"
  jmh "$t" nf4 -- 'Nf4MatmulBench' -wi 3 -w 2 -i 5 -r 2
  jmh "$t" mlp-inference -- '\.InferenceBench\.(base|qlora)Forward' -p batch=32
  # sample mode, so the table takes the median step: at one thread a step of ~8 ms has a tail of
  # steps twice as long (p90 ~17 ms; the JIT still compiles DL4J's methods on the pinned core through
  # the measurement, and young-GC pauses of ~100 ms come every ~3 s) that moved averages by +-4-7 ms
  jmh "$t" mlp-step -- 'FineTuneWaysBench' -p way=qlora,qlora-adam8bit -bm sample
  if [[ $t != 1 ]]; then
    jmh "$t" passive OMP_WAIT_POLICY=PASSIVE -- 'EncoderStepBench' -p mode=lora-qv,head
    jmh "$t" keep -- 'EncoderStepBench' -p mode=lora-qv,head -jvmArgsAppend -Dpeft4j.nd4jOmpThreads=keep
  fi
done
ELAPSED=$(( $(date +%s) - START ))

TORCH_VERSION=""
[[ -n $PY ]] && TORCH_VERSION=$("$PY" -c 'import torch; print(torch.__version__)')
JDK=$(java -version 2>&1 | head -1)
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
BACKEND=$(grep -h -m3 -o 'Loaded \[[A-Za-z]*\] backend\|Blas vendor: \[[A-Z]*\]\|Backend used: \[[A-Z]*\]' "$OUT"/encoder-t*.log | sort -u | tr '\n' ' ')

python3 - "$OUT" "$THREADS" "$CPU" "$(nproc)" "$JDK" "$BACKEND" "$TORCH_VERSION" "$ELAPSED" "$QUICK" "${RT:-0}" <<'EOF'
import json, os, re, sys
out, threads, cpu, cores, jdk, backend, torch_version, elapsed, quick, rt = sys.argv[1:]
threads = threads.split()

def jmh(name, t):
    """(benchmark method, sorted params) -> median ms of one JMH result file."""
    path = os.path.join(out, f"{name}-t{t}.json")
    res = {}
    if not os.path.exists(path):
        return res
    for r in json.load(open(path)):
        m = r["primaryMetric"]
        unit = m["scoreUnit"].split("/")[0]
        scale = {"ms": 1.0, "us": 1e-3, "s": 1e3, "ns": 1e-6}[unit]
        value = m["scorePercentiles"]["50.0"] if r["mode"] == "sample" else m["score"]
        key = (r["benchmark"].rsplit(".", 2)[-2] + "." + r["benchmark"].rsplit(".", 1)[-1],
               tuple(sorted((r.get("params") or {}).items())))
        res[key] = value * scale
    return res

def torch(t):
    res = {}
    path = os.path.join(out, f"torch-t{t}.txt")
    if os.path.exists(path):
        for line in open(path):
            m = re.match(r"torch (\S+) threads=\d+ batch=(\d+) .*median_ms=([\d.]+)", line)
            if m:
                res.setdefault((m.group(1), int(m.group(2))), []).append(float(m.group(3)))
    return {k: sum(v) / len(v) for k, v in res.items()}

rows = []
for t in threads:
    enc, nf4, mi, ms = (jmh(n, t) for n in ("encoder", "nf4", "mlp-inference", "mlp-step"))
    passive, keep = jmh("passive", t), jmh("keep", t)
    pt = torch(t)
    step = lambda d, mode: d.get(("EncoderStepBench.trainStep", (("mode", mode),)))
    fwd = lambda which, b: enc.get((f"EncoderInferenceBench.{which}", (("batch", str(b)),)))
    def row(what, a, b, base, target):
        rows.append((what, t, a, b, base, target))
    row("LoRA r8 q,v step", step(enc, "lora-qv"), pt.get(("lora-qv", 8)), "PyTorch", 1.0)
    row("full fine-tuning step", step(enc, "full"), pt.get(("full", 8)), "PyTorch", 1.0)
    row("head-only step", step(enc, "head"), pt.get(("head", 8)), "PyTorch", None)
    row("forward, batch 1 x 64", fwd("baseForward", 1), pt.get(("forward", 1)), "PyTorch", 1.0)
    row("forward, batch 32 x 64", fwd("baseForward", 32), pt.get(("forward", 32)), "PyTorch", 1.0)
    row("QLoRA q,v step / LoRA q,v step", step(enc, "qlora-qv"), step(enc, "lora-qv"), "peft4j LoRA", 1.3)
    row("QLoRA step Adam8bit / Adam (encoder)", step(enc, "qlora-qv-adam8bit"), step(enc, "qlora-qv"),
        "peft4j Adam", 1.1)
    row("QLoRA forward / float base, batch 1 (encoder)", fwd("qloraForward", 1), fwd("baseForward", 1), "peft4j float", None)
    row("QLoRA forward / float base, batch 32 (encoder)", fwd("qloraForward", 32), fwd("baseForward", 32), "peft4j float", 1.2)
    row("QLoRA forward / float base, batch 32 (MLP d 1024)", mi.get(("InferenceBench.qloraForward", (("batch", "32"),))),
        mi.get(("InferenceBench.baseForward", (("batch", "32"),))), "peft4j float", 1.2)
    row("NF4 x·W / float GEMM, batch 64, 4096²", nf4.get(("Nf4MatmulBench.nf4Mmul", (("batch", "64"), ("n", "4096")))),
        nf4.get(("Nf4MatmulBench.floatGemmBaseline", (("batch", "64"), ("n", "4096")))), "peft4j float", 1.2)
    row("NF4 g·Wᵀ / float GEMM, batch 64, 4096²",
        nf4.get(("Nf4MatmulBench.nf4MmulTransposed", (("batch", "64"), ("n", "4096")))),
        nf4.get(("Nf4MatmulBench.floatGemmTransposedBaseline", (("batch", "64"), ("n", "4096")))), "peft4j float", 1.2)
    row("QLoRA step Adam8bit / Adam (MLP d 1024)", ms.get(("FineTuneWaysBench.trainStep", (("way", "qlora-adam8bit"),))),
        ms.get(("FineTuneWaysBench.trainStep", (("way", "qlora"),))), "peft4j Adam", 1.1)
    if passive:
        for mode in ("lora-qv", "head"):
            row(f"{mode} step, default env / OMP_WAIT_POLICY=PASSIVE", step(enc, mode), step(passive, mode),
                "peft4j passive", 1.1)
            row(f"{mode} step, default env / peft4j.nd4jOmpThreads=keep", step(enc, mode), step(keep, mode),
                "peft4j keep", None)

fmt = lambda v: "–" if v is None else f"{v:,.1f}"
print("### Encoder step and inference: peft4j against PyTorch (benchmarks/encoder-vs-pytorch.sh)")
print()
print(f"Machine: {cpu}, {cores} cores; {jdk}; ND4J: {backend.strip() or 'see the JMH logs'}; "
      f"PyTorch {torch_version or 'not installed'}. Medians of JMH sample mode (peft4j) and of timed steps "
      f"(PyTorch: the mean of the medians of its runs just before and just after peft4j's encoder run); 1 thread = pinned to one core with OMP_NUM_THREADS=1. "
      f"{'QUICK RUN (one short iteration each): not a measurement. ' if quick == '1' else ''}"
      f"{'Run under SCHED_RR. ' if rt == '1' else ''}Took {int(elapsed) // 60} min.")
print()
print("| measure | threads | peft4j ms | baseline ms | baseline | ratio | target | met |")
print("|---|---:|---:|---:|---|---:|---:|:---:|")
for what, t, a, b, base, target in rows:
    ratio = a / b if a is not None and b else None
    met = "" if target is None or ratio is None else ("yes" if ratio <= target else "no")
    print(f"| {what} | {t} | {fmt(a)} | {fmt(b)} | {base} | {'–' if ratio is None else f'{ratio:.2f}'} | "
          f"{'' if target is None else f'≤ {target}'} | {met} |")
EOF
