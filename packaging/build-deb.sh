#!/usr/bin/env bash
# Builds the hactor Debian package with dpkg-deb (no cargo-deb needed).
#
#   packaging/build-deb.sh [--bin-dir DIR] [--out DIR] [--compress xz|gzip|none]
#                          [--no-strip] [--stage-only]
#
# --bin-dir: where the built `hactor` and `ha-manager` are (default: build
#   them with `cargo build --release --locked` and use target/release).
# --out: where the staging tree and the .deb go (default: target/deb).
# --stage-only: lay out the package tree (<out>/hactor_<version>_<arch>/)
#   but do not build the .deb.
#
# The package holds: /usr/sbin/{hactor,ha-manager}, the systemd unit,
# man pages and shell completions generated from the binaries' own
# argument definitions, /etc/default/hactor, and the example configs under
# /usr/share/doc/hactor/examples (the postinst writes /etc/hactor/hactor.toml
# from the host template on first install). Prints the .deb path last.
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=""
out="${CARGO_TARGET_DIR:-target}/deb"
compress="xz"
strip_bins=1
stage_only=0
while [ $# -gt 0 ]; do
    case "$1" in
        --bin-dir) bin_dir="$2"; shift 2 ;;
        --out) out="$2"; shift 2 ;;
        --compress) compress="$2"; shift 2 ;;
        --no-strip) strip_bins=0; shift ;;
        --stage-only) stage_only=1; shift ;;
        *) echo "build-deb.sh: unknown argument '$1'" >&2; exit 2 ;;
    esac
done
case "$compress" in xz|gzip|none) ;; *) echo "build-deb.sh: --compress xz|gzip|none" >&2; exit 2 ;; esac

if [ -z "$bin_dir" ]; then
    cargo build --release --locked --bin hactor --bin ha-manager
    bin_dir="${CARGO_TARGET_DIR:-target}/release"
fi
for bin in hactor ha-manager; do
    if [ ! -x "$bin_dir/$bin" ]; then
        echo "build-deb.sh: $bin_dir/$bin not found (build it first)" >&2
        exit 1
    fi
done

version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
arch="$(dpkg --print-architecture)"
name="hactor_${version}_${arch}"
mkdir -p "$out"
stage="$(cd "$out" && pwd)/$name"
rm -rf "$stage"

install -d -m 0755 "$stage/DEBIAN" "$stage/usr/sbin" "$stage/lib/systemd/system" \
    "$stage/etc/default" "$stage/usr/share/man/man1" "$stage/usr/share/doc/hactor/examples" \
    "$stage/usr/share/bash-completion/completions" "$stage/usr/share/zsh/vendor-completions" \
    "$stage/usr/share/fish/vendor_completions.d"

for bin in hactor ha-manager; do
    install -m 0755 "$bin_dir/$bin" "$stage/usr/sbin/$bin"
    if [ "$strip_bins" = 1 ] && command -v strip >/dev/null; then
        strip --strip-unneeded "$stage/usr/sbin/$bin"
    fi
    # Generated from the binaries that go into the package, so the pages
    # and completions always match their options.
    "$stage/usr/sbin/$bin" man | gzip -9n > "$stage/usr/share/man/man1/$bin.1.gz"
    "$stage/usr/sbin/$bin" completions bash > "$stage/usr/share/bash-completion/completions/$bin"
    "$stage/usr/sbin/$bin" completions zsh > "$stage/usr/share/zsh/vendor-completions/_$bin"
    "$stage/usr/sbin/$bin" completions fish > "$stage/usr/share/fish/vendor_completions.d/$bin.fish"
done

install -m 0644 packaging/systemd/hactor.service "$stage/lib/systemd/system/hactor.service"
install -m 0644 packaging/debian/hactor.default "$stage/etc/default/hactor"
install -m 0644 packaging/debian/hactor.host.toml "$stage/usr/share/doc/hactor/examples/hactor.host.toml"
install -m 0644 config/hactor.example.toml "$stage/usr/share/doc/hactor/examples/hactor.example.toml"
install -m 0644 packaging/fence.cfg.example "$stage/usr/share/doc/hactor/examples/fence.cfg"
install -m 0644 packaging/debian/copyright "$stage/usr/share/doc/hactor/copyright"
install -m 0644 README.md "$stage/usr/share/doc/hactor/README.md"
for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$stage/DEBIAN/$script"
done
echo "/etc/default/hactor" > "$stage/DEBIAN/conffiles"

installed_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: hactor
Version: $version
Architecture: $arch
Maintainer: hactor developers <hactor@localhost>
Installed-Size: $installed_kb
Depends: libc6 (>= 2.34)
Suggests: fence-agents
Conflicts: watchdog
Section: admin
Priority: optional
Description: high-availability cluster resource manager
 hactor runs services (processes, scripts, Proxmox VMs and containers) on
 a cluster of nodes and recovers them on another node when one fails:
 self-fencing through a watchdog, optional hardware fencing through fence
 agents, a replicated cluster store, and ha-manager, a command line
 compatible with Proxmox VE's HA manager.
CONTROL

if [ "$stage_only" = 1 ]; then
    echo "$stage"
    exit 0
fi
deb="$(dirname "$stage")/$name.deb"
dpkg-deb --root-owner-group -Z"$compress" --build "$stage" "$deb" >/dev/null
echo "$deb"
