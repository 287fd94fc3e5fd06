#!/usr/bin/env bash
# Runs every test of Postern, doing its own set-up first:
#
#  1. The Debian packages the tests use (postfix, bsd-mailx, procmail,
#     swaks (with Net::SSLeay and Authen::SASL for its --tls and --auth), curl, fetchmail, isync (mbsync), mutt, dovecot-imapd (the Dovecot Maildir test), pflogsumm; libpam0g-dev, which authd links against;
#     debootstrap, dpkg-dev, binutils and iproute2 for the install test, which builds the .deb and installs it in a fresh Debian root):
#     installed when missing and we are root;
#     otherwise listed, and the tests that need them say `skipped: ...`.
#  2. `cargo build --workspace --bins && cargo test --workspace`, as the
#     invoking user (extra arguments go to `cargo test`).
#  3. When that user is root: every test binary once more as `nobody`, so
#     the tests that only mean something for an ordinary user (root reads
#     and writes anything) run too, and the whole suite is seen to pass in
#     an unprivileged instance as well. As an ordinary user, step 2 already
#     is that pass, and the root-only tests say `skipped: ...`.
#
# Any failing step fails the script. Usage: tests/run.sh [ARGS], where
# ARGS go to step 2's `cargo test` (e.g. `-- --test-threads=1`); step 3
# always runs every binary whole.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(postfix bsd-mailx procmail swaks libnet-ssleay-perl libauthen-sasl-perl curl fetchmail isync mutt dovecot-imapd pflogsumm libpam0g-dev debootstrap dpkg-dev binutils iproute2)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
# Rust links through the C compiler driver, which a fresh Debian lacks.
if ! command -v cc >/dev/null; then
  missing+=(gcc)
fi
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # postfix comes with a service; Debian must not start it here (it
    # would take port 25, and our tests use their own ports). A
    # policy-rc.d that says 101 forbids starting services.
    policy=/usr/sbin/policy-rc.d
    added_policy=
    if [ ! -e "$policy" ]; then
      printf '#!/bin/sh\nexit 101\n' > "$policy"
      chmod +x "$policy"
      added_policy=1
    fi
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
    if [ -n "$added_policy" ]; then rm -f "$policy"; fi
  else
    echo "== not installed: ${missing[*]}"
    echo "   (install them as root: apt-get install ${missing[*]});"
    echo "   the tests that need them print 'skipped: ...' and check nothing."
  fi
fi

if ! command -v cargo >/dev/null; then
  echo "error: no cargo: install Rust 1.95 or newer with rustup (Debian's rustc is too old)" >&2
  exit 1
fi

# The install test's Debian root (tests/install-deb.sh --base):
# debootstrap downloads while cargo compiles (one waits on the network,
# the other on the CPU), and the test waits for it under a lock. Its own
# process group, stopped if this script ends first.
prep=
scratch=
cleanup() {
  if [ -n "$prep" ]; then kill -- -"$prep" 2>/dev/null || true; fi
  if [ -n "$scratch" ]; then rm -rf "$scratch"; fi
}
trap cleanup EXIT
if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null; then
  cache="${CARGO_TARGET_DIR:-target}/install-test"
  mkdir -p "$cache"
  setsid tests/install-deb.sh --base "$cache" > "$cache/prepare.log" 2>&1 &
  prep=$!
fi

echo "== build and test as $(id -un)"
cargo build --workspace --bins
cargo test --workspace "$@"

if [ "$(id -u)" != 0 ]; then
  echo "== not root: the root-only tests above said 'skipped: ...'; run this as root to run them"
  exit 0
fi

echo "== the test binaries again, as nobody"
# nobody must reach the sources (tests read their fixtures and fuzz
# corpora from there) and the binaries; it gets its own HOME and TMPDIR.
if ! runuser -u nobody -- test -r Cargo.toml -a -x target/debug/postern; then
  echo "error: nobody cannot read $(pwd) or run target/debug/postern;" \
    "give others read and search permission on the checkout and target/" >&2
  exit 1
fi
scratch=$(mktemp -d)
chmod 755 "$scratch"
home="$scratch/home"
mkdir "$home"
chown nobody: "$home"
chmod 700 "$home"

# Every test executable with its package's directory (where cargo test
# would run it), from cargo's JSON artifact lines: those with
# "profile":{..."test":true...} and an "executable". Nothing is rebuilt.
cargo test --workspace --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"manifest_path":"\([^"]*\)".*"profile":{[^}]*"test":true[^}]*}.*"executable":"\([^"]*\)".*/\1 \2/p' \
    > "$scratch/binaries"
if [ ! -s "$scratch/binaries" ]; then
  echo "error: found no test binaries in cargo's output" >&2
  exit 1
fi

failed=()
ran=0
while read -r manifest exe; do
  name=$(basename "$exe")
  # xtask's tests run cargo, which is not nobody's to run; they do not
  # depend on the user anyway.
  case "$name" in xtask-*) continue ;; esac
  dir=$(dirname "$manifest")
  log="$scratch/$name.log"
  ran=$((ran + 1))
  if (cd "$dir" && runuser -u nobody -- env HOME="$home" TMPDIR="$home" \
    CARGO_MANIFEST_DIR="$dir" "$exe") > "$log" 2>&1; then
    echo "nobody: $name: $(grep -E '^test result:' "$log" | tail -1)"
    grep -o 'skipped: .*' "$log" | sed 's/^/nobody:   /' || true
  else
    echo "nobody: $name: FAILED; its output:"
    sed 's/^/    /' "$log"
    failed+=("$name")
  fi
done < "$scratch/binaries"

if [ ${#failed[@]} -gt 0 ]; then
  echo "== as nobody, ${#failed[@]} of $ran test binaries failed: ${failed[*]}" >&2
  exit 1
fi
echo "== as nobody, all $ran test binaries passed"
