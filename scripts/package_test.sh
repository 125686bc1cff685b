#!/usr/bin/env bash
# Acceptance test of the Debian package, on this machine, as root (scripts/test.sh runs it):
# builds it (scripts/package.sh, lintian: no errors), installs it with dpkg -i, checks the unit
# with systemd-analyze verify, configures it as an admin would (free loopback ports in the
# conffile), starts the server exactly as the unit's ExecStart says as the package's user
# (there is no systemd here), checks /-/healthy, /-/ready and a StartExport through the Python
# client, checks the data directory (owner, mode, the lock held by the server, the export's
# record), SIGKILLs the server and restarts it to see the export recovered, stops it with the
# unit's KillSignal, then removes (dpkg -r) and purges (dpkg -P) the package and checks that
# nothing of it is left.
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
grep -qx -- --data_dir=/var/lib/rwexport /etc/rwexport/rwexport.flags || fail "flags file: no --data_dir"
data=/var/lib/rwexport
[ "$(stat -c '%U:%G %a' "$data")" = "rwexport:rwexport 700" ] \
    || fail "$data: $(stat -c '%U:%G %a' "$data" 2>&1), want rwexport:rwexport 700"
grep -qx StateDirectoryMode=0700 "$unit" || fail "the unit's StateDirectoryMode is not 0700"
step "data dir $data: rwexport:rwexport 0700 (postinst; the unit's StateDirectory= the same)"

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
start_server() {  # as the unit does; sets pid, waits for /-/ready
  # shellcheck disable=SC2086
  setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all \
      $exec_start >> "$work/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://127.0.0.1:$metrics_port/-/ready" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || fail "the server exited"
    sleep 0.1
  done
}
start_server
[ "$(curl -fsS "http://127.0.0.1:$metrics_port/-/ready")" = "rwexport is Ready." ] || fail "/-/ready"
[ "$(curl -fsS "http://127.0.0.1:$metrics_port/-/healthy")" = "rwexport is Healthy." ] || fail "/-/healthy"
[ "$(ps -o user= -p "$pid")" = "$user" ] || fail "not running as $user"
step "server running as $user (pid $pid), /-/ready and /-/healthy answer 200"
[ "$(cat "$data/LOCK")" = "$pid" ] || fail "$data/LOCK holds '$(cat "$data/LOCK")', not the pid $pid"
if flock -n "$data/LOCK" true; then fail "$data/LOCK is not locked by the server"; fi
second=0
# shellcheck disable=SC2086
setpriv --reuid="$user" --regid="$user" --init-groups --no-new-privs --inh-caps=-all \
    $exec_start > "$work/second.log" 2>&1 || second=$?
[ "$second" -eq 3 ] || fail "a second server on the data dir exited $second, not 3"
[ "$(cat "$work/second.log")" = "rwexport_server: data dir $data is in use by another rwexport_server (pid $pid)" ] \
    || fail "a second server said: $(cat "$work/second.log")"
step "the server holds the lock on $data/LOCK (pid $pid); a second server exits 3 with one line"

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
[ "$(stat -c '%U %a' "$data/exports/$export_id.binpb")" = "rwexport 600" ] \
    || fail "the export's record: $(stat -c '%U %a' "$data/exports/$export_id.binpb" 2>&1)"

kill -KILL "$pid"
wait "$pid" 2>/dev/null || true
start_server
PYTHONPATH="$(bazel info bazel-bin 2>/dev/null)/clients/python:clients/python" /usr/bin/python3 -c '
import sys
from rwexport_client import Client
with Client(sys.argv[1]) as c:
    [e] = [x for x in c.list() if x.export_id == sys.argv[2]]
    assert e.test_run_id == "package-test" and e.recovered_unix_ms > 0, e' \
    "127.0.0.1:$grpc_port" "$export_id" || fail "the export did not come back after SIGKILL"
step "SIGKILL and restart: export $export_id recovered from $data"

kill -"$(sed -n 's/^KillSignal=SIG//p' "$unit")" "$pid"
status=0; wait "$pid" || status=$?
pid=""
[ "$status" -eq 0 ] || fail "server exited $status on SIGTERM"
grep -q "exports_kept_for_next_start=1" "$work/server.log" \
    || fail "the export was not kept for the next start at SIGTERM"
[ -f "$data/exports/$export_id.binpb" ] && [ ! -e "$data/stopped/$export_id.binpb" ] \
    || fail "after SIGTERM the export is not kept in $data/exports/ (or it was stopped)"
step "stopped by SIGTERM: exit 0, open export kept in $data/exports/ for the next start"

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
