#!/bin/sh
# Everything the tests need beyond Python packages; run by `make test` before pytest.
#  - node + npm (Debian packages) and the JS clients in tests/js (pusher-js, laravel-echo),
#    installed with `npm ci` when node_modules is missing or older than package-lock.json;
#  - chromium (Debian package) for the page tests;
#  - chattr, mount for the storage-fault tests;
#  - nginx, openssl, systemd and systemd-container for the deployment tests;
#  - redis-server for the cluster tests (run in the foreground on a free port);
#  - curl for the README walkthrough test.
# Idempotent and quick when everything is there. As root it installs Debian packages
# (apt-get update first). Whatever is still missing at the end is listed and the script
# fails, so `make test` stops with that list instead of running a suite whose tests for
# those tools would fail (they never skip: docs/reliability.md "What skips").
set -eu
cd "$(dirname "$0")/.."

APT_UPDATED=
MISSING=
missing() {
    MISSING="$MISSING
  - $*"
}
apt_install() {
    # $1: the command that must exist; the rest: Debian packages that provide it.
    cmd=$1; shift
    if command -v "$cmd" >/dev/null 2>&1; then
        return 0
    fi
    if [ "$(id -u)" != 0 ]; then
        missing "'$cmd': not root, so I cannot apt-get install $* (sudo apt-get install $*)"
        return 0
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        missing "'$cmd': this is not a Debian-like system (no apt-get); install it by hand"
        return 0
    fi
    if [ -z "$APT_UPDATED" ]; then
        echo "test-deps: apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq
        APT_UPDATED=1
    fi
    echo "test-deps: apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
    command -v "$cmd" >/dev/null 2>&1 || missing "'$cmd': apt-get install $* did not provide it"
}

apt_install node nodejs npm
# npm is packaged separately; a node from elsewhere may come without it.
command -v node >/dev/null 2>&1 && apt_install npm npm
apt_install chromium chromium
# tests/test_reliability_storage.py: chattr +i (a read-only file) and a full tmpfs (mount).
apt_install chattr e2fsprogs
apt_install mount mount
# tests/test_nginx.py: a real nginx (foreground, own prefix) in front of the daemon, with a
# self-signed certificate made by openssl.
apt_install nginx nginx
apt_install openssl openssl
# tests/test_systemd_unit.py: deploy/campaignd.service under a real systemd, booted as PID 1
# of a container (systemd-nspawn) over this machine's own /usr.
apt_install systemd-analyze systemd
apt_install systemd-nspawn systemd-container
# tests/test_cluster_*.py: Debian's redis-server, run by the tests themselves in the
# foreground on a free loopback port with its own folder (the package's own service, if
# the machine starts it, is not used).
apt_install redis-server redis-server
# tests/test_readme.py: the README's walkthrough is run as written, with curl.
apt_install curl curl

if command -v node >/dev/null 2>&1; then
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ]; then
        echo "test-deps: node $(node --version) is older than 20: laravel-echo 2 asks for" \
             "node >= 20.19 (Debian 13, or NodeSource on Debian 12); its tests may fail." >&2
    fi
fi

# The JS clients: `npm ci` only when node_modules is missing or stale.
JS=tests/js
STAMP=$JS/node_modules/.campaignd-lock
if command -v npm >/dev/null 2>&1; then
    want=$(cksum "$JS/package-lock.json" "$JS/package.json" | cksum)
    have=$(cat "$STAMP" 2>/dev/null || true)
    if [ "$want" != "$have" ] || [ ! -d "$JS/node_modules/pusher-js" ] \
            || [ ! -d "$JS/node_modules/laravel-echo" ]; then
        echo "test-deps: npm ci in $JS"
        (cd "$JS" && npm ci --no-audit --no-fund --loglevel=error)
        echo "$want" > "$STAMP"
    fi
else
    missing "'npm': the pusher-js / Laravel Echo clients in $JS cannot be installed"
fi

# `make bench` also needs wrk, the load generator of the webhook benchmarks.
if [ "${1:-}" = bench ]; then
    apt_install wrk wrk
fi

if [ -n "$MISSING" ]; then
    echo "test-deps: the tests need tools that are missing here:$MISSING" >&2
    echo "test-deps: run 'make test' as root on Debian (it installs them), or install them" \
         "yourself; the tests that use them fail, never skip, without them." >&2
    exit 1
fi
