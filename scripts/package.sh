#!/usr/bin/env bash
# Builds the Debian package dist/rwexport_<version>_amd64.deb (version: the VERSION file) from
# the Bazel binaries, and checks it with lintian (no errors allowed).
#   scripts/package.sh [OUT_DIR]       prints the .deb's path last
# Contents: /usr/bin/{rwexport_server,rwexport} (stripped), the systemd unit, its sysusers
# entry, the conffile /etc/rwexport/rwexport.flags (every flag, commented, generated from
# `rwexport_server --help`), man pages, Grafana dashboards in /usr/share/rwexport/grafana.
# Depends is computed by dpkg-shlibdeps. Files in the package belong to root (fakeroot).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
version="$(tr -d ' \n' < VERSION)"
deb="$out/rwexport_${version}_amd64.deb"

bazel build //server:rwexport_server //client:rwexport >&2
bin="$(bazel info bazel-bin 2>/dev/null)"

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
root="$stage/root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" \
    "$root/usr/lib/sysusers.d" "$root/etc/rwexport" "$root/usr/share/doc/rwexport" \
    "$root/usr/share/man/man1" "$root/usr/share/man/man8" "$root/usr/share/rwexport/grafana"
install -m 755 "$bin/server/rwexport_server" "$bin/client/rwexport" "$root/usr/bin/"
strip --strip-unneeded --remove-section=.comment --remove-section=.note \
    "$root/usr/bin/rwexport_server" "$root/usr/bin/rwexport"
install -m 644 deploy/debian/rwexport.service "$root/lib/systemd/system/"
install -m 644 deploy/debian/rwexport.sysusers "$root/usr/lib/sysusers.d/rwexport.conf"
install -m 644 deploy/grafana/*.json deploy/grafana/*.yaml "$root/usr/share/rwexport/grafana/"
install -m 755 deploy/debian/postinst deploy/debian/prerm deploy/debian/postrm "$root/DEBIAN/"

# The conffile: every flag of the server with its meaning, commented out at its default.
server="$root/usr/bin/rwexport_server"
{
  cat <<'HEAD'
# rwexport_server flags, read by rwexport.service (ExecStart=... --flagfile=<this file>).
# One --name=value per line; a line starting with # is a comment. Every flag is listed below
# at its default, commented out: uncomment and edit to change it. Each flag can also come from
# the environment as RWEXPORT_<NAME_IN_CAPITALS> (e.g. in /etc/default/rwexport); this file
# wins. `rwexport_server --help` prints the same list. Restart the service to apply changes.
#
# Set below (not at their defaults): --data_dir=/var/lib/rwexport (the unit's StateDirectory,
# owned by rwexport, mode 0700: running exports survive a crash or restart; it holds their
# configurations with credentials) and --metrics_listen=127.0.0.1:9464.

HEAD
  "$server" --help | awk '
    /^  --flagfile=/ { exit }
    /^  --[a-z0-9_]+=/ { if (flag != "") print help flag "\n"; sub(/^  /, ""); flag = "#" $0; help = ""; next }
    flag != "" && /^      / { sub(/^      /, ""); help = help "# " $0 "\n" }
    END { if (flag != "") print help flag }'
} > "$stage/rwexport.flags"
# Served on loopback by default, so /-/ready, /metrics and the status page work at once.
sed -i 's|^#--metrics_listen=$|--metrics_listen=127.0.0.1:9464|' "$stage/rwexport.flags"
grep -q '^--metrics_listen=127.0.0.1:9464$' "$stage/rwexport.flags"
# Crash safety (issue 12): the data directory is the unit's StateDirectory.
sed -i 's|^#--data_dir=$|--data_dir=/var/lib/rwexport|' "$stage/rwexport.flags"
grep -q '^--data_dir=/var/lib/rwexport$' "$stage/rwexport.flags"
install -m 644 "$stage/rwexport.flags" "$root/etc/rwexport/rwexport.flags"
echo /etc/rwexport/rwexport.flags > "$root/DEBIAN/conffiles"

# Documentation: copyright, changelog, README, man pages made from --help.
install -m 644 deploy/debian/copyright "$root/usr/share/doc/rwexport/"
date_rfc="$(git log -1 --format=%aD 2>/dev/null || date -R)"
printf 'rwexport (%s) unstable; urgency=medium\n\n  * Release %s (revision %s).\n\n -- rwexport developers <rwexport@lists.example.org>  %s\n' \
    "$version" "$version" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
    "$date_rfc" | gzip -9n > "$root/usr/share/doc/rwexport/changelog.gz"
gzip -9n < README.md > "$root/usr/share/doc/rwexport/README.md.gz"
manpage() {  # NAME SECTION SUMMARY HELP_TEXT
  local upper
  upper="$(echo "$1" | tr a-z A-Z)"
  printf '.TH %s %s "%s" "rwexport %s" "rwexport"\n.SH NAME\n%s \\- %s\n.SH DESCRIPTION\n.nf\n' \
      "$upper" "$2" "$(date -u -d "$date_rfc" +%Y-%m-%d)" "$version" "$(echo "$1" | sed 's/_/\\_/g')" "$3"
  sed -e 's/\\/\\e/g' -e 's/^\./\\\&./' -e "s/^'/\\\\\\&'/" <<< "$4"
  printf '.fi\n.SH SEE ALSO\n/usr/share/doc/rwexport/README.md.gz\n'
}
manpage rwexport_server 8 "exports load-test metrics to Prometheus remote-write targets" \
    "$("$server" --help)" | gzip -9n > "$root/usr/share/man/man8/rwexport_server.8.gz"
manpage rwexport 1 "command-line client of rwexport_server" \
    "$("$root/usr/bin/rwexport" --help)" | gzip -9n > "$root/usr/share/man/man1/rwexport.1.gz"

# Depends from the binaries' shared libraries.
mkdir -p "$stage/src/debian"
printf 'Source: rwexport\n\nPackage: rwexport\nArchitecture: amd64\n' > "$stage/src/debian/control"
depends="$(cd "$stage/src" && dpkg-shlibdeps -O --warnings=1 "$root/usr/bin/rwexport_server" \
    "$root/usr/bin/rwexport" | sed -n 's/^shlibs:Depends=//p')"
[ -n "$depends" ] || { echo "package: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
sed -e "s|@VERSION@|$version|" -e "s|@SIZE@|$size|" -e "s|@DEPENDS@|$depends|" \
    deploy/debian/control.in > "$root/DEBIAN/control"
(cd "$root" && find . -type f ! -path './DEBIAN/*' -printf '%P\0' | sort -z | xargs -0 md5sum) \
    > "$root/DEBIAN/md5sums"
find "$root" -type d -exec chmod 755 {} +

rm -f "$deb"
fakeroot dpkg-deb -Zxz --build "$root" "$deb" >&2
lintian --fail-on error --suppress-tags-from-file /dev/null "$deb" >&2
echo "$deb"
