#!/usr/bin/env bash
# Set up everything emoar needs in ./.venv (idempotent; re-runs only when pyproject.toml changed).
# Offline-friendly: only the package registries are used; no model or data is downloaded.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.emoar-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  # torch is pinned to the CPU build (a looser spec pulls several GB of CUDA packages).
  .venv/bin/python -m pip install -q "torch==2.13.0"
  .venv/bin/python -m pip install -q -e ".[train,web,dev,litert,broker,webrtc,federated,ray]"
  echo "$want" > "$stamp"
fi
# Browser tests drive Debian's Chromium through Playwright (never `playwright install`); the
# multi-server meeting test runs a real redis-server (started by the tests on a loopback port).
missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null; } \
    || echo "warning: could not install ${missing[*]}; the tests that need them will skip" >&2
fi
# Front-end packages (onnxruntime-web, MediaPipe, Swagger UI) from web/package-lock.json, copied
# into src/emoar/web/static/vendor/ (gitignored) so the pages fetch nothing from a CDN.
vendored=src/emoar/web/static/vendor/manifest.json
if command -v npm >/dev/null; then
  if [ ! -f "$vendored" ] || [ web/package-lock.json -nt "$vendored" ] || [ web/vendor.mjs -nt "$vendored" ]; then
    (cd web && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error && npm run -s vendor)
  fi
elif [ ! -f "$vendored" ]; then
  echo "warning: npm not found; the live page's on-device mode needs: cd web && npm ci && npm run vendor" >&2
fi
echo "emoar $(.venv/bin/python -c 'import emoar; print(emoar.__version__)') ready in .venv" >&2
