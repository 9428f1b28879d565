#!/usr/bin/env bash
# Build (once) and install llama-cpp-python for a portable CPU baseline, then prove it with a smoke generation.
#
# llama.cpp's default build compiles for the build host's CPU (-march=native): a wheel built on one host can
# die with SIGILL on another host of the same machine kind (AMX advertised by the CPU but refused by the
# hypervisor). pip's wheel cache keys wheels by version, not by CMAKE_ARGS, so it would silently reuse such a
# wheel. This script builds with GGML_NATIVE=OFF (x86-64: SSE4.2, AVX, AVX2, BMI2, FMA, F16C; no AVX-512, no
# AMX), keeps the wheel in a folder named after a hash of everything that shaped it, and installs only from
# that folder.
#
# usage: tools/install-llama-cpp.sh VENV_BIN     (env: LLAMA_CPP_VERSION, LLAMA_CMAKE_ARGS, SLUICE_WHEEL_CACHE)
set -euo pipefail

bin="${1:?usage: $0 VENV_BIN}"
version="${LLAMA_CPP_VERSION:-0.3.36}"
# LLAVA (multimodal) is not used by Sluicegate; leaving it out shortens the build by about a third.
cmake_args="${LLAMA_CMAKE_ARGS:--DGGML_NATIVE=OFF -DLLAVA_BUILD=OFF}"
cache_root="${SLUICE_WHEEL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/sluicegate/wheels}"

py_tag="$("$bin/python" -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
key="$(printf '%s\n' "$version" "$cmake_args" "$py_tag" "$(uname -m)" "$(gcc -dumpfullversion 2>/dev/null || true)" \
       | sha256sum | cut -c1-12)"
wheel_dir="$cache_root/llama-cpp-python-$version-$key"

installed="$("$bin/python" - <<'PY' 2>/dev/null || true
import importlib.metadata, json, pathlib
dist = importlib.metadata.distribution("llama-cpp-python")
marker = pathlib.Path(dist.locate_file("llama_cpp")) / ".sluice-build"
print(marker.read_text().strip() if marker.is_file() else "")
PY
)"

if [ "$installed" != "$key" ]; then
  if ! compgen -G "$wheel_dir/llama_cpp_python-*.whl" >/dev/null; then
    echo "Building llama-cpp-python $version from source for a portable CPU baseline"
    echo "  CMAKE_ARGS=$cmake_args"
    echo "  (once per version and flags; about 4 minutes on 2 cores; the wheel is kept in $wheel_dir)"
    mkdir -p "$wheel_dir.tmp"
    log="$wheel_dir.tmp/build.log"
    # --no-cache-dir: never take a wheel from pip's cache, which ignores CMAKE_ARGS.
    (CMAKE_ARGS="$cmake_args" FORCE_CMAKE=1 "$bin/pip" wheel -v --no-deps --no-cache-dir \
       --no-binary llama-cpp-python -w "$wheel_dir.tmp" "llama-cpp-python==$version" >"$log" 2>&1) &
    build_pid=$!
    # Progress from the build log: ninja's [done/total] lines, one line per 10 %.
    last=-1
    while kill -0 "$build_pid" 2>/dev/null; do
      step="$(grep -oE '\[[0-9]+/[0-9]+\]' "$log" 2>/dev/null | tail -1 | tr -d '[]' || true)"
      if [ -n "$step" ]; then
        pct=$(( ${step%/*} * 100 / ${step#*/} / 10 * 10 ))
        if [ "$pct" -gt "$last" ]; then echo "  compiling llama.cpp: ${pct}% (${step})"; last=$pct; fi
      fi
      sleep 2
    done
    if ! wait "$build_pid"; then
      tail -n 30 "$log" >&2
      echo "error: building llama-cpp-python failed; the whole log is in $log" >&2
      echo "  It needs a C/C++ compiler and cmake (Debian: apt-get install build-essential cmake)." >&2
      exit 1
    fi
    rm -rf "$wheel_dir" && mv "$wheel_dir.tmp" "$wheel_dir"
  fi
  echo "Installing llama-cpp-python $version (build $key)"
  "$bin/pip" install -q --force-reinstall --no-deps --no-index --find-links "$wheel_dir" "llama-cpp-python==$version"
  "$bin/pip" install -q "llama-cpp-python==$version"  # its pure-Python dependencies, from the index
  "$bin/python" - "$key" <<'PY'
import importlib.metadata, pathlib, sys
dist = importlib.metadata.distribution("llama-cpp-python")
(pathlib.Path(dist.locate_file("llama_cpp")) / ".sluice-build").write_text(sys.argv[1] + "\n")
PY
fi

# Smoke generation in a child process: a runtime that cannot execute on this CPU fails here, with a
# message, instead of killing the gateway on its first request.
set +e
"$bin/python" -m sluice.backends.smoke builtin:smollm2
status=$?
set -e
if [ "$status" -ne 0 ]; then
  echo "error: the llama.cpp runtime failed its smoke generation on this CPU (exit $status)." >&2
  if [ "$status" -ge 128 ]; then
    echo "  It died with signal $((status - 128)) (4 = SIGILL: an instruction this CPU refuses)." >&2
  fi
  echo "  Rebuild for a plainer CPU baseline, for example:" >&2
  echo "    LLAMA_CMAKE_ARGS='-DGGML_NATIVE=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_BMI2=OFF -DLLAVA_BUILD=OFF' make serve" >&2
  echo "  The gateway still starts without it: the GGUF model is reported not ready and the rest serves." >&2
  exit 1
fi
