#!/usr/bin/env bash
# Builds the guest for the VM tests from Debian packages: a kernel image and
# an initramfs (cpio.gz) with busybox, nbd-client, nvme-cli, e2fsprogs,
# xfsprogs, the kernel modules the tests need and an /init that runs the
# per-test /test.sh (appended at boot by run-guest.sh as a second cpio).
#
# Cached under build/vm-cache/<key>/, the key a hash of every package's
# name=version and of this script (with vm-exit.c): a new kernel or library
# upload, or an edit here, builds a new guest; otherwise this takes ~1 s.
#
# Prints "KERNEL=path" and "INITRD=path" on stdout. Exit 0 built or cached,
# 77 when the guest cannot be built here (no apt lists and not root, no
# Debian archive reachable), 1 on any other error.
#
# Env: URBD_VM_KERNEL_PKG  versioned kernel package (default: the one
#                          linux-image-cloud-amd64 depends on), e.g. a
#                          bookworm-backports 6.12 cloud image for ublk_drv
#      URBD_VM_CACHE       cache dir (default <repo>/build/vm-cache)
#      URBD_VM_EXTRA_BINS  host-built binaries (space-separated paths) to put
#                          in the guest's /usr/sbin: INITRD is then the cached
#                          initramfs plus a small cpio of them, kept as
#                          <key>/extra-<hash>.cpio; every library they need
#                          must already be in the guest (from Debian packages)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
cache=${URBD_VM_CACHE:-$root/build/vm-cache}

say() { printf 'build-initramfs: %s\n' "$*" >&2; }
skip() {
	say "SKIP: $*"
	exit 77
}
die() {
	say "ERROR: $*"
	exit 1
}

for c in apt-get apt-cache dpkg-deb readelf gzip sha256sum flock; do
	command -v "$c" >/dev/null 2>&1 || skip "needs $c"
done
mkdir -p "$cache"

# One builder at a time; the others wait (bounded) and then find the cache.
exec 9>"$cache/.lock"
flock -w 600 9 || die "another build held $cache/.lock for 600 s"

# Packages whose files go into the guest. The libraries they link are found
# below; fio is left out: its Debian build links ceph and gluster (~80 MiB).
TOOLS=(busybox-static nbd-client nvme-cli e2fsprogs xfsprogs)
# Modules loaded at boot (their dependencies are added and ordered below).
# nvme-core, nvme, ext4, jbd2, mbcache, crc16 and crc32c are built in.
MODULES=(virtio_pci virtio_net nbd loop nvme-tcp xfs)

# emit DIR: the KERNEL=/INITRD= lines for a built guest
emit() {
	local initrd=$1/initramfs.cpio.gz
	if [ -n "${URBD_VM_EXTRA_BINS:-}" ]; then
		initrd=$(add_extra_bins "$1") || exit 1
	fi
	echo "KERNEL=$1/vmlinuz"
	echo "INITRD=$initrd"
}
# add_extra_bins DIR: prints the path of DIR's initramfs + URBD_VM_EXTRA_BINS
add_extra_bins() {
	local d=$1 h f b so libs x sz
	for b in $URBD_VM_EXTRA_BINS; do [ -f "$b" ] || die "URBD_VM_EXTRA_BINS: no file $b"; done
	# shellcheck disable=SC2086 # a list of paths
	h=$(sha256sum $URBD_VM_EXTRA_BINS | sed 's|  .*/|  |' | sha256sum | cut -c1-16)
	f=$d/extra-$h.cpio
	[ -s "$f" ] && { echo "$f"; return 0; }
	libs=$(gzip -dc "$d/initramfs.cpio.gz" | "$d/busybox" cpio -t 2>/dev/null |
		sed -n 's|^\(\./\)\?usr/lib/x86_64-linux-gnu/||p')
	x=$(mktemp -d "$cache/.extra.XXXXXX")
	mkdir -p "$x/usr/sbin"
	for b in $URBD_VM_EXTRA_BINS; do
		for so in $(readelf -d "$b" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			grep -qxF "$so" <<<"$libs" || {
				rm -rf "$x"
				die "$so (needed by ${b##*/}) is not in the guest: add its package to TOOLS"
			}
		done
		cp "$b" "$x/usr/sbin/"
	done
	# an uncompressed cpio after the gzip one, at a 512-byte boundary (as run-guest.sh)
	sz=$(stat -c %s "$d/initramfs.cpio.gz")
	{
		cat "$d/initramfs.cpio.gz"
		head -c $(((512 - sz % 512) % 512)) /dev/zero
		(cd "$x" && find . | LC_ALL=C sort | "$d/busybox" cpio -o -H newc 2>/dev/null)
	} >"$f.tmp" && mv "$f.tmp" "$f"
	rm -rf "$x"
	say "guest + ${URBD_VM_EXTRA_BINS}: $f"
	echo "$f"
}

have_lists() { compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null; }
if ! have_lists; then
	[ "$(id -u)" -eq 0 ] || skip "apt lists are empty and apt-get update needs root"
	say "apt lists are empty: apt-get update"
	apt-get update >&2 || skip "apt-get update failed (no Debian archive reachable)"
	have_lists || skip "apt-get update left no package lists"
fi

# Fast path: the key only changes with the apt lists (apt-get update), this
# script or the kernel package asked for; apt-cache is slow (~1 s a call).
lists_stamp=$({
	stat -c '%n %s %Y' /var/lib/apt/lists/*_Packages* 2>/dev/null
	echo "${URBD_VM_KERNEL_PKG:-}"
	cat "$0" "$here/vm-exit.c"
} | sha256sum | cut -c1-16)
mkdir -p "$cache/keys"
key=$(cat "$cache/keys/$lists_stamp" 2>/dev/null || true)
if [ -n "$key" ] && [ -s "$cache/$key/initramfs.cpio.gz" ] && [ -s "$cache/$key/vmlinuz" ] &&
	[ -x "$cache/$key/busybox" ]; then
	emit "$cache/$key"
	exit 0
fi

kpkg=${URBD_VM_KERNEL_PKG:-}
if [ -z "$kpkg" ]; then
	kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null |
		awk '$1 == "Depends:" && $2 ~ /^linux-image-/ { print $2; exit }')
	[ -n "$kpkg" ] || skip "apt knows no linux-image-cloud-amd64 (not a Debian amd64 archive?)"
fi

# The shared libraries: Depends/Pre-Depends of the tools, followed only
# through library packages (lib*, zlib1g) so debconf/perl/python stay out.
# One apt-cache call per level of the dependency tree.
declare -A seen=()
queue=("${TOOLS[@]}")
pkgs=("$kpkg")
for ((round = 0; round < 20 && ${#queue[@]} > 0; round++)); do
	for p in "${queue[@]}"; do
		seen[$p]=1
		pkgs+=("$p")
	done
	next=()
	while read -r d; do
		[ -n "$d" ] && [ -z "${seen[$d]:-}" ] && next+=("$d")
	done < <(apt-cache depends --no-recommends --no-suggests --no-conflicts \
		--no-breaks --no-replaces --no-enhances "${queue[@]}" 2>/dev/null |
		awk '$1 == "Depends:" || $1 == "PreDepends:" || $1 == "|Depends:" { print $2 }' |
		grep -E '^(lib|zlib1g)' | grep -vE '^libicu[0-9]|^libpython|-perl$' | sort -u)
	queue=("${next[@]}")
done

# name=version of every package, from one apt-cache policy call
manifest=$(apt-cache policy "${pkgs[@]}" 2>/dev/null | awk '
	/^[^ ]/ { sub(/:$/, ""); p = $0 }
	$1 == "Candidate:" && p != "" { print p "=" $2; p = "" }' | sort -u)
for p in "${pkgs[@]}"; do
	grep -q "^$p=" <<<"$manifest" || skip "apt has no candidate for $p"
done
grep -q '=(none)$' <<<"$manifest" && skip "apt has no candidate for: $(grep '=(none)$' <<<"$manifest" | tr '\n' ' ')"
key=$({
	echo "$manifest"
	cat "$0" "$here/vm-exit.c"
} | sha256sum | cut -c1-16)
out=$cache/$key
if [ -s "$out/initramfs.cpio.gz" ] && [ -s "$out/vmlinuz" ] && [ -x "$out/busybox" ]; then
	echo "$key" >"$cache/keys/$lists_stamp"
	emit "$out"
	exit 0
fi

t0=$(date +%s)
say "building guest $key (kernel $kpkg) in $out"
work=$(mktemp -d "$cache/.work.XXXXXX")
trap 'rm -rf "$work"' EXIT
debs=$cache/debs
mkdir -p "$debs" "$work/pkg" "$work/root"

# apt-get download into a root-owned dir: run it unsandboxed, quietly
want=()
for pv in $manifest; do
	p=${pv%%=*} v=${pv#*=}
	compgen -G "$debs/${p}_*${v##*:}_*.deb" >/dev/null || want+=("$pv")
done
if [ ${#want[@]} -gt 0 ]; then
	say "apt-get download ${#want[@]} packages"
	(cd "$debs" && apt-get -q -o APT::Sandbox::User=root download "${want[@]}") >&2 ||
		skip "apt-get download failed (no Debian archive reachable?)"
fi
for pv in $manifest; do
	p=${pv%%=*} v=${pv#*=}
	f=$(compgen -G "$debs/${p}_*${v##*:}_*.deb" | head -n1) || true
	[ -n "$f" ] || die "downloaded no .deb for $pv"
	dpkg-deb -x "$f" "$work/pkg"
done

P=$work/pkg R=$work/root
ML=usr/lib/x86_64-linux-gnu
# merged-/usr layout, as Debian 12 itself
mkdir -p "$R"/{usr/bin,usr/sbin,$ML,usr/lib64,dev,proc,sys,tmp,run,etc/nvme,mnt,var}
ln -s usr/bin "$R/bin"
ln -s usr/sbin "$R/sbin"
ln -s usr/lib "$R/lib"
ln -s usr/lib64 "$R/lib64"

# busybox and its applets; the real tools copied later replace applets
bb=$P/bin/busybox
[ -x "$bb" ] || bb=$P/usr/bin/busybox
[ -x "$bb" ] || die "no busybox in busybox-static"
cp "$bb" "$R/usr/bin/busybox"
for a in $("$bb" --list-full); do
	[ -e "$R/$a" ] || [ -L "$R/$a" ] || ln -s /usr/bin/busybox "$R/$a"
done

# the real tools (Debian 12 ships them under /sbin and /usr/sbin)
find_bin() {
	local b
	for b in "$P/sbin/$1" "$P/usr/sbin/$1" "$P/bin/$1" "$P/usr/bin/$1"; do
		[ -f "$b" ] && { echo "$b"; return 0; }
	done
	return 1
}
elfs=()
for t in nbd-client nvme mke2fs e2fsck tune2fs dumpe2fs mkfs.xfs xfs_repair xfs_db; do
	src=$(find_bin "$t") || die "no $t in the extracted packages"
	rm -f "$R/usr/sbin/$t" "$R/usr/bin/$t"
	cp "$src" "$R/usr/sbin/$t"
	elfs+=("$R/usr/sbin/$t")
done
for l in mkfs.ext4:mke2fs mkfs.ext2:mke2fs fsck.ext4:e2fsck; do
	rm -f "$R/usr/sbin/${l%%:*}" "$R/usr/bin/${l%%:*}"
	ln -s "${l#*:}" "$R/usr/sbin/${l%%:*}"
done
# mkfs.xfs and xfs_repair are dynamic ELF; xfs_db is a shell wrapper in
# some versions: keep only ELF files in the library walk
tmp=()
for e in "${elfs[@]}"; do
	if head -c4 "$e" | grep -q ELF; then tmp+=("$e"); fi
done
elfs=("${tmp[@]}")

# Shared libraries: walk DT_NEEDED (readelf, nothing executed) through the
# extracted packages' library dirs; what ldd would list, host-independent.
libdirs=("$P/lib/x86_64-linux-gnu" "$P/usr/lib/x86_64-linux-gnu" "$P/lib" "$P/usr/lib")
declare -A done_lib=()
resolve() {
	local so=$1 d
	for d in "${libdirs[@]}"; do
		[ -e "$d/$so" ] && { readlink -f "$d/$so"; return 0; }
	done
	return 1
}
todo=("${elfs[@]}")
for ((i = 0; i < ${#todo[@]} && i < 500; i++)); do
	for so in $(readelf -d "${todo[$i]}" 2>/dev/null |
		sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
		[ -z "${done_lib[$so]:-}" ] || continue
		done_lib[$so]=1
		f=$(resolve "$so") || die "library $so (needed by ${todo[$i]##*/}) is in no downloaded package"
		cp "$f" "$R/$ML/$so"
		todo+=("$R/$ML/$so")
	done
done
# the dynamic loader, where PT_INTERP points
ld=$(resolve ld-linux-x86-64.so.2) || die "no ld-linux-x86-64.so.2 (libc6)"
cp "$ld" "$R/$ML/ld-linux-x86-64.so.2"
ln -sf "/$ML/ld-linux-x86-64.so.2" "$R/usr/lib64/ld-linux-x86-64.so.2"
# no ld.so.cache: the loader's built-in multiarch dirs find /usr/lib/x86_64-linux-gnu
printf '/usr/lib/x86_64-linux-gnu\n' >"$R/etc/ld.so.conf"

# kernel and modules
kver=$(basename "$(compgen -G "$P/lib/modules/*" | head -n1)")
[ -n "$kver" ] || die "no /lib/modules in $kpkg"
cp "$P/boot/vmlinuz-$kver" "$work/vmlinuz"
modsrc=$P/lib/modules/$kver
declare -A modpath=() moddone=()
while read -r f; do
	n=$(basename "$f")
	n=${n%%.ko*}
	modpath[$n]=$f
	modpath[${n//-/_}]=$f
done < <(find "$modsrc/kernel" -name '*.ko*')
moddeps() { # the "depends=" of a module's .modinfo section
	local f=$1
	case $f in
	*.xz) xz -dc "$f" ;;
	*.zst) zstd -dcq "$f" ;;
	*) cat "$f" ;;
	esac | tr '\0' '\n' | sed -n 's/^depends=//p' | head -n1 | tr ',' ' '
}
order=()
addmod() { # post-order: dependencies first
	local n=${1//-/_} f d
	[ -z "${moddone[$n]:-}" ] || return 0
	moddone[$n]=1
	f=${modpath[$n]:-}
	if [ -z "$f" ]; then
		grep -q "/${1}.ko" "$modsrc/modules.builtin" 2>/dev/null ||
			grep -q "/${n}.ko" "$modsrc/modules.builtin" 2>/dev/null ||
			die "module $1 is neither in $kpkg nor built in"
		return 0
	fi
	for d in $(moddeps "$f"); do addmod "$d"; done
	order+=("$f")
}
for m in "${MODULES[@]}"; do addmod "$m"; done
mkdir -p "$R/lib/modules/$kver"
: >"$R/etc/vm-modules"
for f in "${order[@]}"; do
	rel=${f#"$modsrc"/}
	mkdir -p "$R/lib/modules/$kver/$(dirname "$rel")"
	case $f in # busybox insmod wants them uncompressed
	*.xz) xz -dc "$f" >"$R/lib/modules/$kver/${rel%.xz}" && rel=${rel%.xz} ;;
	*.zst) zstd -dcq "$f" >"$R/lib/modules/$kver/${rel%.zst}" && rel=${rel%.zst} ;;
	*) cp "$f" "$R/lib/modules/$kver/$rel" ;;
	esac
	echo "$rel" >>"$R/etc/vm-modules"
done
echo "$kver" >"$R/etc/vm-kver"

# vm-exit: the status byte to isa-debug-exit; without a compiler the guest
# still reports through its console line (run-guest.sh reads both)
if command -v gcc >/dev/null 2>&1 &&
	gcc -Os -static -nostdlib -ffreestanding -fno-tree-loop-distribute-patterns \
		-fno-stack-protector -fno-pie -no-pie -o "$R/usr/sbin/vm-exit" "$here/vm-exit.c" >&2; then
	:
else
	say "no gcc: the guest reports its status on the console only"
fi

printf 'root:x:0:0:root:/root:/bin/sh\n' >"$R/etc/passwd"
printf 'root:x:0:\n' >"$R/etc/group"
printf '127.0.0.1 localhost\n' >"$R/etc/hosts"

cat >"$R/init" <<'INIT'
#!/bin/sh
# urbd VM test guest: mount, load modules, network, run /test.sh, report.
export PATH=/usr/sbin:/usr/bin HOME=/root
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t tmpfs -o mode=1777 tmpfs /tmp
mount -t tmpfs tmpfs /run
mkdir -p /dev/pts /dev/shm /root
mount -t devpts devpts /dev/pts 2>/dev/null
kver=$(cat /etc/vm-kver)
while read -r m; do
	insmod "/lib/modules/$kver/$m" 2>/dev/null || echo "vm-init: insmod $m failed"
done </etc/vm-modules
ip link set lo up
n=0
while [ ! -e /sys/class/net/eth0 ] && [ $n -lt 50 ]; do sleep 0.1; n=$((n + 1)); done
# QEMU user-mode networking: the guest is always 10.0.2.15, the host 10.0.2.2
ip link set eth0 up && ip addr add 10.0.2.15/24 dev eth0 &&
	ip route add default via 10.0.2.2 || echo "vm-init: no eth0 (virtio_pci/virtio_net?)"
hostname urbd-vm
# libnvme/nvme-cli want a host NQN and host ID that stay the same
[ -s /etc/nvme/hostid ] || cat /proc/sys/kernel/random/uuid >/etc/nvme/hostid
[ -s /etc/nvme/hostnqn ] || echo "nqn.2014-08.org.nvmexpress:uuid:$(cat /etc/nvme/hostid)" >/etc/nvme/hostnqn
echo "vm-init: up $(cut -d' ' -f1 /proc/uptime) s, kernel $kver"
rc=1
if [ -f /test.sh ]; then
	[ -f /test.env ] && . /test.env
	export VM_KVER=$kver
	sh /test.sh
	rc=$?
else
	echo "vm-init: no /test.sh"
fi
echo "URBD-VM-RESULT rc=$rc uptime=$(cut -d' ' -f1 /proc/uptime)"
sync
# isa-debug-exit: QEMU exits with (byte << 1) | 1; 16 pass, 17 fail, 18 skip
case $rc in 0) st=16 ;; 77) st=18 ;; *) st=17 ;; esac
[ -x /usr/sbin/vm-exit ] && /usr/sbin/vm-exit $st
poweroff -f
INIT
chmod 755 "$R/init"
# the kernel opens /dev/console before /init; /init copes without it too
if [ "$(id -u)" -eq 0 ]; then
	mknod -m 600 "$R/dev/console" c 5 1 2>/dev/null || true
	mknod -m 666 "$R/dev/null" c 1 3 2>/dev/null || true
fi

# the cpio: busybox's own cpio (Debian has no cpio installed by default)
(cd "$R" && find . | LC_ALL=C sort | "$R/usr/bin/busybox" cpio -o -H newc 2>/dev/null) |
	gzip -6 >"$work/initramfs.cpio.gz"
{
	echo "kernel $kver"
	echo "modules:"
	sed 's/^/  /' "$R/etc/vm-modules"
	echo "packages:"
	while read -r l; do echo "  $l"; done <<<"$manifest"
} >"$work/manifest.txt"

rm -rf "$out"
mkdir -p "$out"
cp "$R/usr/bin/busybox" "$work/busybox" # run-guest.sh's cpio where the host has none
mv "$work/vmlinuz" "$work/initramfs.cpio.gz" "$work/manifest.txt" "$work/busybox" "$out/"
echo "$key" >"$cache/keys/$lists_stamp"
say "built in $(($(date +%s) - t0)) s: $(du -h "$out/initramfs.cpio.gz" | cut -f1) initramfs, kernel $kver"
emit "$out"
