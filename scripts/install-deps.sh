#!/bin/sh
# Install the Debian 12 packages mapram needs to build, test and benchmark.
# Idempotent: does nothing when everything is present. Needs root to install.
#   scripts/install-deps.sh [--qemu] [--fuzz]
#   (--qemu also installs qemu-system-x86 for interop tests, --fuzz clang and
#   its runtime libraries, libFuzzer's included, for make check-fuzz / make fuzz)
set -e
pkgs="gcc make meson ninja-build pkg-config python3 libglib2.0-dev libjson-glib-dev
      liburing-dev libaio-dev libzstd-dev libxxhash-dev zlib1g-dev libbz2-dev liblzma-dev fio gnuplot-nox iperf3 iproute2 binutils util-linux e2fsprogs"
case " $* " in *" --qemu "*) pkgs="$pkgs qemu-system-x86" ;; esac
case " $* " in *" --fuzz "*) pkgs="$pkgs clang libclang-rt-dev" ;; esac
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "install-deps: installing:$missing" >&2
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=sudo; else
    echo "install-deps: need root to install:$missing" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
${SUDO:-} apt-get update -qq
${SUDO:-} apt-get install -y -qq --no-install-recommends $missing >/dev/null
