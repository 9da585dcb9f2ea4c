#!/usr/bin/env bash
# Start / stop / inspect a real Slurm cluster on this host: one node, or several in network namespaces.
#
#   bash scripts/local-slurm.sh up             # install (if needed), configure, start, wait for idle node
#   bash scripts/local-slurm.sh up --nodes 3   # ... plus 3 compute nodes node1..node3, each its own host
#   bash scripts/local-slurm.sh status         # show daemons + sinfo; non-zero exit if not usable
#   bash scripts/local-slurm.sh down           # stop the daemons; remove the namespaces and links it made
#
# The host's own node (partition `debug`, the default) is always there. `--nodes N` adds N compute nodes
# (partition `multi`), each a slurmd in its own Linux network namespace (`slurm-nodeI`) and UTS namespace
# (hostname `nodeI`), with address 10.213.77.(10+I) on a veth pair into a bridge `slurmbr0` (10.213.77.1, where
# slurmctld listens). They share this machine's file system and munge, as NFS and a site key would on a real
# cluster; names resolve through lines this script adds to /etc/hosts (marked `# local-slurm`). Every address
# is on that private /24 inside namespaces the script created: nothing is sent off this machine.
#
# Meant for CI / dev boxes running Debian or Ubuntu as root WITHOUT systemd:
# the daemons are started directly and tracked through their pid files.
# Uses the distribution's paths: /etc/slurm/slurm.conf, /var/lib/slurm, /var/log/slurm.
# Only processes whose pid files this script knows about are ever signalled.
#
# Environment knobs (all optional):
#   LOCAL_SLURM_WAIT_S     seconds to wait for the node to become idle (default 60)
#   LOCAL_SLURM_PARTITION  partition name (default debug)
#   LOCAL_SLURM_FORCE_INSTALL=1  run the apt-get step even if the binaries exist
#   LOCAL_SLURM_SUBNET     the first three octets of the private /24 for --nodes (default 10.213.77)
set -euo pipefail
export PATH="$PATH:/usr/sbin:/sbin"

SLURM_CONF_DIR=/etc/slurm
SLURM_CONF=$SLURM_CONF_DIR/slurm.conf
STATE_DIR=/var/lib/slurm/slurmctld
SPOOL_DIR=/var/lib/slurm/slurmd
LOG_DIR=/var/log/slurm
CTLD_PID=/run/slurmctld.pid
# %n: one pid file per node name (the host's node and every namespaced node run a slurmd)
SLURMD_PID_PATTERN=/run/slurmd-%n.pid
SLURMD_PID=/run/slurmd-$(hostname -s).pid
LEGACY_SLURMD_PID=/run/slurmd.pid   # written by earlier versions of this script
NET_STATE=/run/local-slurm-net   # what `up --nodes` created: one line per object, for `down`
SUBNET=${LOCAL_SLURM_SUBNET:-10.213.77}
BRIDGE=slurmbr0
MULTI_PARTITION=multi
NODES=0
MUNGE_KEY=/etc/munge/munge.key
MUNGE_RUN=/run/munge
MUNGE_PID=$MUNGE_RUN/munged.pid
WAIT_S=${LOCAL_SLURM_WAIT_S:-60}
PARTITION=${LOCAL_SLURM_PARTITION:-debug}

log() { printf '[local-slurm] %s\n' "$*"; }
die() { printf '[local-slurm] ERROR: %s\n' "$*" >&2; exit 1; }

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (starts munged/slurmctld/slurmd and writes $SLURM_CONF)"
}

# pid_alive PIDFILE EXPECTED_COMM -> 0 if the pid in PIDFILE is running and is EXPECTED_COMM
pid_alive() {
  local pidfile=$1 comm=$2 pid
  [ -s "$pidfile" ] || return 1
  pid=$(tr -dc '0-9' <"$pidfile")
  [ -n "$pid" ] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ]
}

# stop_pidfile PIDFILE COMM -> SIGTERM, wait up to 10 s, then SIGKILL
stop_pidfile() {
  local pidfile=$1 comm=$2 pid i
  if ! pid_alive "$pidfile" "$comm"; then
    rm -f "$pidfile"
    return 0
  fi
  pid=$(tr -dc '0-9' <"$pidfile")
  log "stopping $comm (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$comm (pid $pid) did not exit after SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.5
  fi
  rm -f "$pidfile"
}

install_packages() {
  local missing=()
  for b in slurmctld slurmd munged mungekey sinfo; do
    command -v "$b" >/dev/null 2>&1 || missing+=("$b")
  done
  if [ ${#missing[@]} -eq 0 ] && [ "${LOCAL_SLURM_FORCE_INSTALL:-0}" != 1 ]; then
    log "slurm + munge already installed (slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?'))"
    return 0
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing ${missing[*]} and no apt-get to install them"
  log "installing slurmctld slurmd munge slurm-client (missing: ${missing[*]})"
  export DEBIAN_FRONTEND=noninteractive
  # Without systemd the packages' postinst would run their init scripts
  # (`invoke-rc.d slurmctld start || exit 1`), which fail before slurm.conf
  # exists. Deny service starts during the install, like Docker images do.
  local own_policy=0 rc=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
    chmod 0755 /usr/sbin/policy-rc.d
    own_policy=1
  fi
  { apt-get update -q && apt-get install -y -q --no-install-recommends slurmctld slurmd munge slurm-client; } || rc=$?
  [ "$own_policy" -eq 0 ] || rm -f /usr/sbin/policy-rc.d
  [ "$rc" -eq 0 ] || die "apt-get failed (rc=$rc)"
  log "installed slurm $(dpkg-query -W -f='${Version}' slurmctld 2>/dev/null || echo '?')"
}

write_config() {
  local host cpus mem_mb real_mb tmp
  host=$(hostname -s)
  cpus=$(nproc)
  mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)
  # A bit below MemTotal: slurmd drains a node whose RealMemory exceeds what it measures.
  real_mb=$(( mem_mb * 95 / 100 ))
  [ "$real_mb" -ge 100 ] || real_mb=100

  local ctld_addr=127.0.0.1 i
  # namespaced nodes reach slurmctld over the bridge; 127.0.0.1 would be their own loopback
  [ "$NODES" -gt 0 ] && ctld_addr=${SUBNET}.1
  mkdir -p "$SLURM_CONF_DIR" "$STATE_DIR" "$SPOOL_DIR/$host" "$LOG_DIR"
  for i in $(seq 1 "$NODES"); do mkdir -p "$SPOOL_DIR/node$i"; done
  tmp=$(mktemp)
  cat >"$tmp" <<EOF
# Generated by scripts/local-slurm.sh -- test cluster on ${host} (+${NODES} namespaced nodes). Do not edit by hand.
ClusterName=local
SlurmctldHost=${host}(${ctld_addr})
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
# A requeued job waits cred_expire seconds before it may start again (default 120 s); 10 s keeps the
# preemption/timeout/requeue tests fast. Real clusters keep their own value.
AuthInfo=cred_expire=10
CredType=cred/munge
MpiDefault=none
# No mail on a test box (the default /usr/bin/mail is usually absent -> log noise).
MailProg=/bin/true
SwitchType=switch/none
# No cgroups needed (works in containers / gVisor); processes tracked via /proc.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Trust the node definition below instead of the detected hardware (nproc may be
# smaller than the physical core count under cpu quotas / affinity masks).
SlurmdParameters=config_overrides
ReturnToService=2
StateSaveLocation=${STATE_DIR}
SlurmdSpoolDir=${SPOOL_DIR}/%n
SlurmctldPidFile=${CTLD_PID}
SlurmdPidFile=${SLURMD_PID_PATTERN}
SlurmctldLogFile=${LOG_DIR}/slurmctld.log
SlurmdLogFile=${LOG_DIR}/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
# No accounting: slurmdbd would need MySQL/MariaDB. sacct therefore errors out;
# submitit tolerates that and detects completion through its result files.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
# Keep a test cluster snappy: a requeued job (held for cred_expire) starts at the next pass, within 2 s.
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,sched_interval=2,bf_interval=5
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=300
MaxArraySize=10001
NodeName=${host} NodeAddr=127.0.0.1 CPUs=${cpus} RealMemory=${real_mb} State=UNKNOWN
PartitionName=${PARTITION} Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
  if [ "$NODES" -gt 0 ]; then
    for i in $(seq 1 "$NODES"); do
      echo "NodeName=node${i} NodeHostname=node${i} NodeAddr=${SUBNET}.$((10 + i)) CPUs=${cpus} RealMemory=${real_mb} State=UNKNOWN" >>"$tmp"
    done
    echo "PartitionName=${MULTI_PARTITION} Nodes=node[1-${NODES}] Default=NO MaxTime=INFINITE State=UP" >>"$tmp"
  fi
  if [ -f "$SLURM_CONF" ] && cmp -s "$tmp" "$SLURM_CONF"; then
    rm -f "$tmp"
    log "config unchanged: $SLURM_CONF (node ${host} + ${NODES} namespaced, CPUs=${cpus}, RealMemory=${real_mb}MB)"
    return 1   # unchanged
  fi
  install -m 0644 "$tmp" "$SLURM_CONF"
  rm -f "$tmp"
  log "wrote $SLURM_CONF (node ${host}, partition ${PARTITION}; ${NODES} namespaced node(s); CPUs=${cpus}, RealMemory=${real_mb}MB)"
  return 0     # changed
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
  mkdir -p /etc/munge /var/lib/munge /var/log/munge "$MUNGE_RUN"
  chown munge:munge /etc/munge /var/lib/munge /var/log/munge "$MUNGE_RUN"
  chmod 0700 /etc/munge /var/log/munge
  chmod 0711 /var/lib/munge
  chmod 0755 "$MUNGE_RUN"
  if [ ! -s "$MUNGE_KEY" ]; then
    log "creating munge key $MUNGE_KEY"
    if command -v mungekey >/dev/null 2>&1; then
      mungekey --create --keyfile="$MUNGE_KEY" --force
    else
      dd if=/dev/urandom of="$MUNGE_KEY" bs=1 count=1024 status=none
    fi
  fi
  chown munge:munge "$MUNGE_KEY"
  chmod 0400 "$MUNGE_KEY"

  if pid_alive "$MUNGE_PID" munged && munge_works; then
    log "munged already running (pid $(cat "$MUNGE_PID"))"
    return 0
  fi
  stop_pidfile "$MUNGE_PID" munged
  rm -f "$MUNGE_RUN"/munge.socket.2*
  log "starting munged"
  runuser -u munge -- /usr/sbin/munged
  local i
  for i in $(seq 1 50); do
    munge_works && { log "munged up (pid $(cat "$MUNGE_PID" 2>/dev/null || echo '?'))"; return 0; }
    sleep 0.2
  done
  tail -n 20 /var/log/munge/munged.log >&2 || true
  die "munged did not come up"
}

# port_holder PORT [NETNS] -> "comm (pid N)" of the process listening on TCP PORT, or nothing
port_holder() {
  local port=$1 ns=${2:-} out
  if [ -n "$ns" ]; then
    out=$(ip netns exec "$ns" ss -Hltnp "sport = :$port" 2>/dev/null || true)
  else
    out=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
  fi
  [ -n "$out" ] || return 0
  printf '%s' "$out" | sed -n 's/.*users:(("\([^"]*\)",pid=\([0-9]*\).*/\1 (pid \2)/p' | head -n1
}

# check_port PORT PIDFILE WHAT [NETNS]: die with a clear message when PORT is held by anything but PIDFILE's daemon
check_port() {
  local port=$1 pidfile=$2 what=$3 ns=${4:-} holder
  holder=$(port_holder "$port" "$ns")
  [ -n "$holder" ] || return 0
  if pid_alive "$pidfile" "${what%% *}" && [[ "$holder" == *"pid $(tr -dc '0-9' <"$pidfile"))"* ]]; then
    return 0
  fi
  die "TCP port $port${ns:+ in namespace $ns} is already taken by ${holder}, so $what cannot start. Another Slurm on this machine? Stop it (for one started by this script: bash $0 down) or free the port."
}

# start_slurmd NODE [NETNS]: the node's slurmd, in its namespaces for a namespaced node
start_slurmd() {
  local node=$1 ns=${2:-} pidfile="/run/slurmd-$1.pid" i
  if pid_alive "$pidfile" slurmd; then
    log "slurmd $node already running (pid $(cat "$pidfile"))"
    return 0
  fi
  check_port 6818 "$pidfile" "slurmd $node" "$ns"
  log "starting slurmd $node${ns:+ in network namespace $ns}"
  if [ -n "$ns" ]; then
    # nsenter, not `ip netns exec`: that remounts /sys, without the cgroup mount slurmd needs. Its own UTS
    # namespace gives it hostname nodeI, from which slurmd takes its node name.
    nsenter --net="/run/netns/$ns" unshare --uts -- sh -c "hostname $node && exec /usr/sbin/slurmd -f $SLURM_CONF"
  else
    /usr/sbin/slurmd -f "$SLURM_CONF"
  fi
  for i in $(seq 1 50); do
    pid_alive "$pidfile" slurmd && break
    sleep 0.2
  done
  pid_alive "$pidfile" slurmd || { tail -n 30 "$LOG_DIR/slurmd-$node.log" >&2 || true; die "slurmd $node did not start (its log is above)"; }
  log "slurmd $node up (pid $(cat "$pidfile"))"
}

start_slurm_daemons() {
  local restart=$1 i
  if [ "$restart" = 1 ]; then
    stop_all_slurmd
    stop_pidfile "$CTLD_PID" slurmctld
  fi
  if pid_alive "$CTLD_PID" slurmctld; then
    log "slurmctld already running (pid $(cat "$CTLD_PID"))"
  else
    check_port 6817 "$CTLD_PID" slurmctld
    log "starting slurmctld"
    /usr/sbin/slurmctld -f "$SLURM_CONF"
  fi
  for i in $(seq 1 50); do
    scontrol ping >/dev/null 2>&1 && break
    sleep 0.2
  done
  scontrol ping >/dev/null 2>&1 || { tail -n 30 "$LOG_DIR/slurmctld.log" >&2 || true; die "slurmctld does not answer 'scontrol ping'"; }
  log "slurmctld up (pid $(cat "$CTLD_PID"))"
  start_slurmd "$(hostname -s)"
  for i in $(seq 1 "$NODES"); do
    # over the bridge to slurmctld's port, from inside the namespace (bash's /dev/tcp: no ping needed)
    timeout 5 ip netns exec "slurm-node$i" bash -c "exec 3<>/dev/tcp/${SUBNET}.1/6817" 2>/dev/null \
      || die "namespace slurm-node$i cannot reach slurmctld at ${SUBNET}.1:6817 over $BRIDGE"
    start_slurmd "node$i" "slurm-node$i"
  done
}

# every slurmd this script may have started: the host's, any namespaced node's, the old single pid file
stop_all_slurmd() {
  local f
  for f in /run/slurmd-*.pid "$LEGACY_SLURMD_PID"; do
    [ -e "$f" ] && stop_pidfile "$f" slurmd
  done
  return 0
}

# ---- the namespaced nodes' network: bridge slurmbr0 (SUBNET.1) <- veth -> netns slurm-nodeI (SUBNET.(10+I))
net_record() { echo "$1" >>"$NET_STATE"; }

net_up() {
  local i ns addr
  command -v ip >/dev/null 2>&1 || {
    log "installing iproute2 (for network namespaces)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends iproute2 >/dev/null || die "apt-get install iproute2 failed"
  }
  if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
    # the /24 must be free: a route into it that is not ours means another network uses it
    if ip -4 route show | grep -q "^${SUBNET//./\\.}\.0/24"; then
      die "the subnet ${SUBNET}.0/24 is already routed on this machine ($(ip -4 route show | grep "^${SUBNET//./\\.}\.0/24")); choose another with LOCAL_SLURM_SUBNET=a.b.c"
    fi
    ip link add "$BRIDGE" type bridge || die "cannot create bridge $BRIDGE (needs root and a kernel with bridge support)"
    net_record "link $BRIDGE"
    ip addr add "${SUBNET}.1/24" dev "$BRIDGE"
    ip link set "$BRIDGE" up
    log "bridge $BRIDGE ${SUBNET}.1/24"
  fi
  for i in $(seq 1 "$NODES"); do
    ns=slurm-node$i; addr=${SUBNET}.$((10 + i))
    if ! ip netns list | grep -qw "^$ns"; then
      ip netns add "$ns" || die "cannot create network namespace $ns"
      net_record "netns $ns"
    fi
    if ! ip link show "slv$i" >/dev/null 2>&1; then
      ip link add "slv$i" type veth peer name eth0 netns "$ns" || die "cannot create veth slv$i"
      net_record "link slv$i"
      ip link set "slv$i" master "$BRIDGE"
      ip link set "slv$i" up
      ip -n "$ns" addr add "$addr/24" dev eth0
      ip -n "$ns" link set eth0 up
      ip -n "$ns" link set lo up
      ip -n "$ns" route add default via "${SUBNET}.1"
    fi
    if ! grep -q "^$addr node$i # local-slurm$" /etc/hosts; then
      echo "$addr node$i # local-slurm" >>/etc/hosts
    fi
  done
  # the host's name on the bridge, for jobs on the namespaced nodes that look it up
  grep -q "^${SUBNET}.1 slurmctld-host # local-slurm$" /etc/hosts || echo "${SUBNET}.1 slurmctld-host # local-slurm" >>/etc/hosts
  log "$NODES namespaced node(s): $(for i in $(seq 1 "$NODES"); do printf 'node%s=%s.%s ' "$i" "$SUBNET" $((10 + i)); done)"
}

# remove exactly what net_up recorded, newest first, and our /etc/hosts lines
net_down() {
  local kind name
  if [ -s "$NET_STATE" ]; then
    tac "$NET_STATE" | while read -r kind name; do
      case "$kind" in
        link) ip link del "$name" 2>/dev/null && log "removed link $name" || true ;;
        netns) ip netns del "$name" 2>/dev/null && log "removed network namespace $name" || true ;;
      esac
    done
  fi
  rm -f "$NET_STATE"
  if grep -q ' # local-slurm$' /etc/hosts 2>/dev/null; then
    # /etc/hosts may be a bind mount (containers): rewrite it in place rather than replacing the file
    local kept; kept=$(grep -v ' # local-slurm$' /etc/hosts)
    printf '%s\n' "$kept" >/etc/hosts
    log "removed the local-slurm lines from /etc/hosts"
  fi
}

node_state() { sinfo -h -N -n "${1:-$(hostname -s)}" -o %t 2>/dev/null | head -n1; }

wait_idle() {
  local node=$1 deadline state resumed=0
  deadline=$(( $(date +%s) + WAIT_S ))
  log "waiting up to ${WAIT_S}s for node ${node} to become idle"
  while :; do
    state=$(node_state "$node" || true)
    case "$state" in
      idle|mix|mixed|alloc|allocated|comp|completing)
        log "node ${node} is ${state}"
        return 0 ;;
      down*|drain*|drng*|fail*|inval*)
        if [ "$resumed" -lt 3 ]; then
          log "node ${node} is '${state}' -> scontrol update state=resume"
          scontrol update nodename="$node" state=resume || true
          resumed=$(( resumed + 1 ))
        fi ;;
    esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      sinfo -N -l >&2 || true
      scontrol show node "$node" >&2 || true
      tail -n 20 "$LOG_DIR/slurmctld.log" >&2 || true
      tail -n 20 "$LOG_DIR/slurmd-$node.log" >&2 || true
      die "node ${node} not idle after ${WAIT_S}s (last state: '${state:-none}')"
    fi
    sleep 1
  done
}

# the number of namespaced nodes in the running configuration (0 for a one-node cluster)
configured_nodes() {
  [ -f "$SLURM_CONF" ] || { echo 0; return; }
  grep -c '^NodeName=node[0-9]' "$SLURM_CONF" || true
}

cmd_up() {
  need_root
  [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] && log "note: systemd is PID 1, but daemons are started directly anyway"
  install_packages
  if [ "$NODES" -lt "$(configured_nodes)" ]; then
    # fewer namespaced nodes than the running cluster has: stop every slurmd, rebuild the network smaller
    stop_all_slurmd
    net_down
  fi
  local restart=0 i
  if write_config; then restart=1; fi
  [ "$NODES" -gt 0 ] && net_up
  start_munge
  start_slurm_daemons "$restart"
  wait_idle "$(hostname -s)"
  for i in $(seq 1 "$NODES"); do wait_idle "node$i"; done
  sinfo
  log "cluster is up (partition ${PARTITION}$([ "$NODES" -gt 0 ] && echo "; partition ${MULTI_PARTITION}: node[1-${NODES}]")); stop it with: bash $0 down"
}

cmd_down() {
  need_root
  stop_all_slurmd
  stop_pidfile "$CTLD_PID" slurmctld
  stop_pidfile "$MUNGE_PID" munged
  net_down
  log "cluster is down"
}

cmd_status() {
  local ok=0 state node nodes i
  nodes="$(hostname -s)"
  for i in $(seq 1 "$(configured_nodes)"); do nodes="$nodes node$i"; done
  for pair in "$MUNGE_PID:munged" "$CTLD_PID:slurmctld"; do
    if pid_alive "${pair%%:*}" "${pair##*:}"; then
      log "${pair##*:}: running (pid $(cat "${pair%%:*}"))"
    else
      log "${pair##*:}: NOT running"
      ok=1
    fi
  done
  for node in $nodes; do
    if pid_alive "/run/slurmd-$node.pid" slurmd; then
      log "slurmd $node: running (pid $(cat "/run/slurmd-$node.pid"))"
    else
      log "slurmd $node: NOT running"
      ok=1
    fi
  done
  if command -v sinfo >/dev/null 2>&1 && sinfo >/dev/null 2>&1; then
    sinfo
    for node in $nodes; do
      state=$(node_state "$node" || true)
      case "$state" in
        idle|mix|mixed|alloc|allocated|comp|completing) log "node $node: ${state}" ;;
        *) log "node $node: '${state:-unknown}' (not usable)"; ok=1 ;;
      esac
    done
  else
    log "sinfo: controller not reachable"
    ok=1
  fi
  [ "$ok" -eq 0 ] && log "cluster is up" || log "cluster is NOT up"
  return "$ok"
}

cmd=${1:-}
shift || true
while [ $# -gt 0 ]; do
  case "$1" in
    --nodes) NODES=${2:-}; shift 2 || true ;;
    --nodes=*) NODES=${1#--nodes=}; shift ;;
    *) echo "unknown option: $1 (usage: $0 up [--nodes N]|down|status)" >&2; exit 2 ;;
  esac
done
[[ "$NODES" =~ ^[0-9]+$ ]] && [ "$NODES" -le 50 ] || { echo "--nodes takes a number from 0 to 50, got '$NODES'" >&2; exit 2; }

case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up [--nodes N]|down|status" >&2; exit 2 ;;
esac
