#!/usr/bin/env bash
# Install what a fresh machine lacks to build, boot and test the series.
# Idempotent: on a machine that has everything it checks and returns in seconds.
set -euo pipefail

log() { printf 'setup: %s\n' "$*" >&2; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (apt-get install)"

SOURCES=/etc/apt/sources.list.d/kernel-workbench.sources
PREFS=/etc/apt/preferences.d/kernel-workbench

APT_PKGS=(
	build-essential bc bison flex cpio kmod rsync python3
	libelf-dev libssl-dev libncurses-dev dwarves zstd xz-utils
	clang-19 lld-19 llvm-19 libclang-19-dev
	busybox-static gdb file gnuplot-nox
	trace-cmd linux-perf
)
QEMU_PKGS=(qemu-system-x86 qemu-utils)
BINDGEN_MIN=0.71.1

write_sources() {
	# Same mirror and key as the machine's own Debian sources.
	local uris keyring
	uris=$(awk -F': *' '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}' \
		/etc/apt/sources.list.d/*.sources 2>/dev/null || true)
	[ -n "$uris" ] || uris=http://deb.debian.org/debian
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	local want
	want=$(cat <<EOF
Types: deb deb-src
URIs: $uris
Suites: bookworm-backports trixie trixie-backports
Components: main
Signed-By: $keyring
EOF
)
	local prefs
	prefs=$(cat <<'EOF'
Package: *
Pin: release n=trixie
Pin-Priority: 100

Package: *
Pin: release n=trixie-backports
Pin-Priority: 100

Package: *
Pin: release n=bookworm-backports
Pin-Priority: 100
EOF
)
	local changed=0
	if [ "$(cat "$SOURCES" 2>/dev/null)" != "$want" ]; then
		printf '%s\n' "$want" >"$SOURCES"
		changed=1
	fi
	if [ "$(cat "$PREFS" 2>/dev/null)" != "$prefs" ]; then
		printf '%s\n' "$prefs" >"$PREFS"
		changed=1
	fi
	echo "$changed"
}

pkg_missing() {
	local p missing=()
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
			missing+=("$p")
	done
	printf '%s\n' "${missing[@]}"
}

version_ge() { # $1 >= $2
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}

main() {
	local changed updated=0
	changed=$(write_sources)
	local stamp=/var/lib/apt/lists/.kernel-workbench-updated
	if [ "$changed" = 1 ] || [ ! -e "$stamp" ]; then
		log "apt-get update"
		apt-get update -qq || die "apt-get update failed"
		touch "$stamp"
		updated=1
	fi

	mapfile -t missing < <(pkg_missing "${APT_PKGS[@]}")
	if [ "${#missing[@]}" -gt 0 ] && [ -n "${missing[0]}" ]; then
		[ "$updated" = 1 ] || apt-get update -qq
		updated=1
		log "installing ${missing[*]}"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			"${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
	fi
	mapfile -t missing < <(pkg_missing "${QEMU_PKGS[@]}")
	if [ "${#missing[@]}" -gt 0 ] && [ -n "${missing[0]}" ] ||
		! command -v qemu-system-x86_64 >/dev/null; then
		[ "$updated" = 1 ] || apt-get update -qq
		log "installing QEMU from bookworm-backports"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
			-t bookworm-backports "${QEMU_PKGS[@]}" >/dev/null ||
			die "apt-get install -t bookworm-backports ${QEMU_PKGS[*]} failed"
	fi

	command -v rustup >/dev/null || die "rustup not found: the machine's Rust toolchain is missing"
	if ! rustup component list --installed 2>/dev/null | grep -q '^rust-src'; then
		log "rustup component add rust-src"
		rustup component add rust-src >/dev/null || die "rustup component add rust-src failed"
	fi
	# clippy-driver for CLIPPY=1 builds (the llvm config), rustfmt for rustfmtcheck.
	local comp
	for comp in clippy rustfmt; do
		rustup component list --installed 2>/dev/null | grep -q "^$comp" && continue
		log "rustup component add $comp"
		rustup component add "$comp" >/dev/null || die "rustup component add $comp failed"
	done

	local bg have=""
	bg=$(command -v bindgen || true)
	[ -n "$bg" ] && have=$("$bg" --version 2>/dev/null | awk '{print $2}')
	if [ -z "$have" ] || ! version_ge "$have" "$BINDGEN_MIN"; then
		log "cargo install bindgen-cli (>= $BINDGEN_MIN, have '${have:-none}')"
		LIBCLANG_PATH=/usr/lib/llvm-19/lib cargo install --locked -q bindgen-cli ||
			die "cargo install bindgen-cli failed"
	fi
	log "ok: $(gcc --version | head -n1); rustc $(rustc --version | awk '{print $2}');" \
		"bindgen $(bindgen --version | awk '{print $2}'); $(qemu-system-x86_64 --version | head -n1)"
}

main "$@"
