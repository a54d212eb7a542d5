#!/usr/bin/env bash
# Installs everything urbd needs to build, test and benchmark on a fresh
# Debian 12 machine. Used by .ci/run and by `make run`.
set -euo pipefail
PKGS=(
	# toolchain
	gcc make pkg-config clang llvm libclang-rt-14-dev
	# libraries (DESIGN.md §6b)
	liburing-dev libnvme-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler
	protobuf-compiler libssl-dev libcurl4-openssl-dev libzstd-dev libjson-c-dev
	libcmocka-dev libisal-dev
	# real peers the tests and benchmarks drive
	qemu-utils libnbd-bin python3-libnbd nbdkit fio fuse3 e2fsprogs xfsprogs
	python3 openssl util-linux procps iproute2 nftables python3-grpcio python3-grpc-tools
	# the QEMU guest with the kernel's nbd and nvme-tcp initiators (tests/vm)
	qemu-system-x86 binutils
)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "install-deps: all ${#PKGS[@]} packages present"
	exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: missing packages: ${missing[*]}; run as root (sudo)" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends "${missing[@]}"
