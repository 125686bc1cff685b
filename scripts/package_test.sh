#!/usr/bin/env bash
# Acceptance test of the Debian package, on this machine, as root (scripts/test.sh runs it):
# builds it (scripts/package.sh, lintian: no errors), installs it with dpkg -i, checks the unit
# with systemd-analyze verify, configures it as an admin would (free loopback ports in the
# conffile), starts the server exactly as the unit's ExecStart says as the package's user
# (there is no systemd here), checks /-/healthy, /-/ready and a StartExport through the Python
# client, stops it with the unit's KillSignal, then removes (dpkg -r) and purges (dpkg -P) the
# package and checks that nothing of it is left.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "package_test: needs root (dpkg -i)" >&2; exit 1; }
if [[ "$(dpkg-query -W -f='${Status}' rwexport 2>/dev/null || true)" == *installed* ]]; then
  echo "package_test: a package rwexport is already installed here; not touching it" >&2
  exit 1
fi

work="$(mktemp -d)"
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  dpkg -P rwexport >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "package_test: FAIL: $*" >&2; [ -f "$work/server.log" ] && tail -20 "$work/server.log" >&2; exit 1; }
step() { echo "package_test: $*"; }

deb="$(scripts/package.sh "$work/dist" | tail -1)"
[ -f "$deb" ] || fail "no package built"
step "built $(basename "$deb") ($(du -k "$deb" | cut -f1) KiB); lintian: no errors"
version="$(tr -d ' \n' < VERSION)"
[ "$(basename "$deb")" = "rwexport_${version}_amd64.deb" ] || fail "name $(basename "$deb")"
depends="$(dpkg-deb -f "$deb" Depends)"
[[ "$depends" == *libgrpc++* ]] || fail "Depends lacks libgrpc++ (dpkg-shlibdeps): $depends"
contents="$(dpkg-deb -c "$deb")"
[[ "$contents" == *./etc/rwexport/rwexport.flags* ]] || fail "no flags file"

dpkg -i "$deb" >/dev/null
step "installed: $(dpkg-query -W -f='${Package} ${Version} ${Status}' rwexport)"
getent passwd rwexport >/dev/null || fail "no system user rwexport"
[ "$(getent passwd rwexport | cut -d: -f7)" != /bin/bash ] || fail "rwexport user has a login shell"
unit=/lib/systemd/system/rwexport.service
systemd-analyze verify "$unit" > "$work/verify.log" 2>&1 || { cat "$work/verify.log"; fail "systemd-analyze verify"; }
if grep -i rwexport "$work/verify.log"; then fail "systemd-analyze verify complained about the unit"; fi
step "systemd-analyze verify $unit: clean"
version_line="$(/usr/bin/rwexport_server --version)"
[[ "$version_line" =~ ^rwexport_server\ version\ $version\ \(revision\ [0-9a-f]{12}(-dirty)?,\ built\ [0-9T:-]+Z\)$ ]] \
    || fail "--version: $version_line"
help="$(/usr/bin/rwexport_server --help)"
[ "$(grep -c -- --listen <<< "$help")" -ge 1 ] || fail "--help lacks --listen"
# Every flag of the server is in the conffile.
for flag in $(sed -n 's/^  --\([a-z0-9_]*\)=.*/\1/p' <<< "$help" | grep -v '^flagfile$'); do
  grep -Eq "^#?--$flag=" /etc/rwexport/rwexport.flags || fail "flags file lacks --$flag"
done
grep -qx /etc/rwexport/rwexport.flags /var/lib/dpkg/info/rwexport.conffiles || fail "not a conffile"

# Configure as an admin would: free loopback ports (other servers may run on this machine).
ports="$(/usr/bin/python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))')"
grpc_port="${ports% *}"; metrics_port="${ports#* }"
sed -i -e "s|^#--listen=.*|--listen=127.0.0.1:$grpc_port|" \
    -e "s|^--metrics_listen=.*|--metrics_listen=127.0.0.1:$metrics_port|" /etc/rwexport/rwexport.flags

# Start it exactly as the unit says, as the unit's user, with the unit's state directory.
exec_start="$(sed -n 's/^ExecStart=//p' "$unit")"
user="$(sed -n 's/^User=//p' "$unit")"
[ "$exec_start" = "/usr/bin/rwexport_server --flagfile=/etc/rwexport/rwexport.flags" ] || fail "ExecStart: $exec_start"
install -d -o "$user" -g "$user" -m 0750 /var/lib/rwexport  # what StateDirectory= does
# shellcheck disable=SC2086
setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all \
    $exec_start > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$metrics_port/-/ready" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || fail "the server exited"
  sleep 0.1
done
[ "$(curl -fsS "http://127.0.0.1:$metrics_port/-/ready")" = "rwexport is Ready." ] || fail "/-/ready"
[ "$(curl -fsS "http://127.0.0.1:$metrics_port/-/healthy")" = "rwexport is Healthy." ] || fail "/-/healthy"
[ "$(ps -o user= -p "$pid")" = "$user" ] || fail "not running as $user"
step "server running as $user (pid $pid), /-/ready and /-/healthy answer 200"

bazel build //clients/python:stubs >/dev/null 2>&1
export_id="$(PYTHONPATH="$(bazel info bazel-bin 2>/dev/null)/clients/python:clients/python" /usr/bin/python3 -c '
import sys
from rwexport_client import Client
with Client(sys.argv[1]) as c:
    e = c.start("package-test", [{"provider": "prometheus",
                                  "remoteWriteURL": "http://127.0.0.1:9/api/v1/write"}])
    assert e in [x.export_id for x in c.list()]
    print(e)' "127.0.0.1:$grpc_port")" || fail "StartExport through the Python client"
page="$(curl -fsS "http://127.0.0.1:$metrics_port/")"
[[ "$page" == *"data-export-id=\"$export_id\""* ]] || fail "status page"
step "StartExport through the Python client: export $export_id, on the status page"

kill -"$(sed -n 's/^KillSignal=SIG//p' "$unit")" "$pid"
status=0; wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "server exited $status on SIGTERM"
grep -q "exports_flushed=1" "$work/server.log" || fail "the export was not flushed at stop"
step "stopped by SIGTERM: exit 0, open export flushed"

dpkg -r rwexport >/dev/null
[ ! -e /usr/bin/rwexport_server ] && [ ! -e "$unit" ] || fail "files left after dpkg -r"
[ -f /etc/rwexport/rwexport.flags ] || fail "dpkg -r removed the conffile"
dpkg -P rwexport >/dev/null
for path in /etc/rwexport /var/lib/rwexport /usr/bin/rwexport /usr/bin/rwexport_server \
    /usr/share/rwexport /usr/share/doc/rwexport "$unit" /usr/lib/sysusers.d/rwexport.conf \
    /etc/systemd/system/multi-user.target.wants/rwexport.service \
    /var/lib/systemd/deb-systemd-helper-enabled/rwexport.service.dsh-also; do
  [ ! -e "$path" ] || fail "$path left after dpkg -P"
done
! dpkg-query -W rwexport >/dev/null 2>&1 || fail "dpkg still knows rwexport"
step "dpkg -r kept the conffile, dpkg -P removed everything (the system user stays, as Debian does)"
echo "package_test: PASS"
