# shellcheck shell=bash
# cargo-offline.sh -- sourced by tools/wdk-cross/build.sh and
# tools/crspace/check-windows.sh: run cargo offline once a build has fetched
# everything for the same manifests and lockfile.
#
# -Zbuild-std resolves the standard library's workspace too, where the
# project's [patch] is unused, and that makes cargo refresh the crates.io index
# on every run. Once a build has succeeded, everything is in its CARGO_HOME;
# later runs with the same inputs go offline: faster, and they work without a
# network.

# fetch_key ROOT FILE...: a digest of every Cargo.toml under ROOT (target/
# aside) and of FILE... (the lockfile, a cargo config).
fetch_key() {
    _root=$1
    shift
    { find "$_root" -name Cargo.toml -not -path "$_root/target/*" -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
      sha256sum "$@"; } | sha256sum | cut -c1-32
}

# choose_offline MODE STAMP KEY: MODE 1 or 0 forces cargo offline or online;
# otherwise offline when STAMP (written after a good build) holds KEY.
choose_offline() {
    case $1 in
        1) export CARGO_NET_OFFLINE=true ;;
        0) unset CARGO_NET_OFFLINE ;;
        *) if [ "$(cat "$2" 2>/dev/null)" = "$3" ]; then
               export CARGO_NET_OFFLINE=true
           else
               unset CARGO_NET_OFFLINE
           fi ;;
    esac
}
