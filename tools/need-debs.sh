#!/bin/sh
# need-debs.sh PKG... -- install the Debian packages among PKG that are not
# installed yet, and only those. Quick and offline when all are present: each
# package is looked up with dpkg-query first, and `apt-get update` runs only
# when something has to be installed. A package of a foreign architecture
# (NAME:ARCH, e.g. wine32:i386) enables that architecture first. Uses sudo
# when not root.
#
# Every script of the project that needs a Debian package calls this
# (tools/test.sh, tools/wdk-cross/install-deps.sh, tools/crspace/check-windows.sh,
# tests/wine/run.sh, src/windows/model/run.sh).
set -eu

missing=""
for p in "$@"; do
    name=${p%%=*}
    # ${db:Status-Status} is "installed" only for a fully installed package
    st=$(dpkg-query -W -f='${db:Status-Status} ${Version}' "$name" 2>/dev/null || true)
    case "$p" in
        *=*) [ "$st" = "installed ${p#*=}" ] || missing="$missing $p" ;;
        *) [ "${st%% *}" = installed ] || missing="$missing $p" ;;
    esac
done
[ -z "$missing" ] && exit 0

echo "need-debs: installing:$missing" >&2
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
# A package of another architecture (wine32:i386) needs that architecture
# enabled first (multiarch); the update below then fetches its lists.
for p in $missing; do
    case "$p" in
        *:*)
            arch=${p##*:}
            arch=${arch%%=*}
            dpkg --print-foreign-architectures | grep -qx "$arch" || $SUDO dpkg --add-architecture "$arch"
            ;;
    esac
done
$SUDO apt-get update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO apt-get install -y -qq --no-install-recommends $missing
