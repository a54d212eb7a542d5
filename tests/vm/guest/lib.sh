# shellcheck shell=sh
# Helpers for guest test scripts (busybox sh inside the VM; sourced as
# /lib.sh). A guest script exits 0 pass, 1 fail, 77 skip; /init turns that
# into QEMU's exit status.
#
#   gpass/gfail/gskip MSG    finish
#   step MSG                 a timestamped progress line on the console
#   mark WORD                "URBD-VM-MARK WORD" for the host to wait on
#   must CMD...              run CMD, fail the test if it fails
#   nbd_connect DEV [ARGS]   nbd-client to $NBD_HOST:$NBD_PORT export
#                            $NBD_EXPORT, bounded retries
#   nbd_disconnect DEV

NBD_HOST=${NBD_HOST:-10.0.2.2}
NBD_EXPORT=${NBD_EXPORT:-demo}

step() { echo "[$(cut -d' ' -f1 /proc/uptime)] guest: $*"; }
mark() { echo "URBD-VM-MARK $*"; }
gpass() {
	step "PASS${1:+: $1}"
	exit 0
}
gfail() {
	step "FAIL: $*"
	exit 1
}
gskip() {
	step "SKIP: $*"
	exit 77
}
must() {
	"$@" || gfail "command failed ($?): $*"
}

# nbd_connect DEV [extra nbd-client args]: retries for up to 10 s
nbd_connect() {
	_nc_dev=$1
	shift
	[ -n "${NBD_PORT:-}" ] || gfail "NBD_PORT not set"
	_nc_try=0 # sh has no locals: a name the tests do not use
	while [ $_nc_try -lt 20 ]; do
		if nbd-client "$NBD_HOST" "$NBD_PORT" "$_nc_dev" -N "$NBD_EXPORT" "$@"; then
			return 0
		fi
		_nc_try=$((_nc_try + 1))
		sleep 0.5
	done
	return 1
}

nbd_disconnect() { nbd-client -d "$1"; }

# devsize DEV: size in bytes from sysfs
devsize() { echo $(($(cat "/sys/block/${1#/dev/}/size") * 512)); }
