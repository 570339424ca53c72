#!/bin/sh
# quickstart.sh - set up tend on a Debian 12 machine and run it.
#
#   ./quickstart.sh demo   install what is missing, build, run the demo
#   ./quickstart.sh test   install what is missing, build (normal and
#                          ASan+UBSan), run every test suite, print a summary
#
# Needs root (or sudo) only when a Debian package is missing.
set -eu

cd "$(dirname "$0")"
ROOT=$(pwd)
PKGS="gcc libc6-dev meson ninja-build pkg-config python3 git ca-certificates
      libgit2-dev libsqlite3-dev libyaml-dev libcurl4-openssl-dev liblua5.4-dev
      libopenblas-dev libmicrohttpd-dev chromium chromium-driver sqlite3"

missing_pkgs() {
	for p in $PKGS; do
		dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "install ok installed" ||
			printf '%s ' "$p"
	done
}

install_missing() {
	miss=$(missing_pkgs)
	[ -z "$miss" ] && return 0
	echo "quickstart: installing missing Debian packages: $miss"
	SUDO=""
	[ "$(id -u)" -ne 0 ] && SUDO=sudo
	$SUDO apt-get update -qq
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $miss
}

# build DIR [meson options...]: configure once, then build.
build() {
	dir=$1; shift
	if [ ! -f "$dir/build.ninja" ]; then
		meson setup "$dir" "$@" >"$dir.setup.log" 2>&1 || {
			cat "$dir.setup.log"; rm -f "$dir.setup.log"; exit 1; }
		rm -f "$dir.setup.log"
	fi
	ninja -C "$dir" >/dev/null || ninja -C "$dir"
}

cmd=${1:-}
case "$cmd" in
demo)
	install_missing
	build build
	shift
	exec "$ROOT/build/supervisor/tend" demo "$@"
	;;
test)
	install_missing
	build build
	build build-asan -Db_sanitize=address,undefined -Db_lundef=false \
		-Dcuda=disabled -Dbuildtype=debug
	status=0
	meson test -C build --print-errorlogs --no-suite bench || status=1
	meson test -C build-asan --print-errorlogs --no-suite bench --no-suite gpu \
		--timeout-multiplier 4 || status=1
	python3 "$ROOT/scripts/test_summary.py" build build-asan || status=1
	exit $status
	;;
*)
	echo "usage: ./quickstart.sh demo | test" >&2
	exit 2
	;;
esac
