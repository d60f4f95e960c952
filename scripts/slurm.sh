#!/usr/bin/env bash
# A single-node Slurm cluster on loopback for nbscale's Slurm tests, without
# systemd: munged + slurmctld + slurmd started by this script, stopped by PID.
#
#   scripts/slurm.sh install   # apt packages (munge slurmctld slurmd slurm-client)
#   scripts/slurm.sh up        # start; prints the node's CPUs and memory
#   scripts/slurm.sh down      # stop only the daemons this script started
#   scripts/slurm.sh status
#
# State lives in .slurm/ in the checkout (config, logs, spool, pid files).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${NBSCALE_SLURM_STATE:-$ROOT/.slurm}"
CONF="$STATE/slurm.conf"
export SLURM_CONF="$CONF"

die() { echo "slurm.sh: $*" >&2; exit 1; }
SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
    return 0
  fi
  command -v apt-get >/dev/null || die "Slurm is needed and apt-get is not available: install munge, slurmctld, slurmd and slurm-client"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends munge slurmctld slurmd slurm-client >/dev/null
}

write_config() {
  mkdir -p "$STATE"/{spool/ctld,spool/d,log,run}
  local cpus mem_mb
  cpus="$(nproc)"
  # Leave the kernel and the test runner some room.
  mem_mb="$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))"
  cat > "$CONF" <<CONF
ClusterName=nbscale-test
SlurmctldHost=localhost
SlurmctldPort=${NBSCALE_SLURMCTLD_PORT:-26817}
SlurmdPort=${NBSCALE_SLURMD_PORT:-26818}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/spool/ctld
SlurmdSpoolDir=$STATE/spool/d
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=1
JobAcctGatherParams=OverMemoryKill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# As most sites do: a job that asks for no memory gets 2 GiB per CPU, not the whole node
# (which would run such jobs one at a time).
DefMemPerCPU=2048
SchedulerParameters=batch_sched_delay=0
SchedulerType=sched/backfill
EnforcePartLimits=ALL
MailProg=/bin/true
ReturnToService=2
MpiDefault=none
SwitchType=switch/none
InactiveLimit=0
KillWait=5
MinJobAge=300
SlurmctldTimeout=30
SlurmdTimeout=30
Waittime=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
PartitionName=small Nodes=localhost MaxTime=INFINITE State=UP
CONF
}

start_munge() {
  # One munged serves the whole machine; reuse a running one and never claim it as ours.
  if [ -S /run/munge/munge.socket.2 ] && munge -n </dev/null >/dev/null 2>&1; then return 0; fi
  $SUDO mkdir -p /run/munge /var/log/munge /var/lib/munge /etc/munge
  $SUDO chown munge:munge /run/munge /var/log/munge /var/lib/munge /etc/munge
  if [ ! -s /etc/munge/munge.key ]; then
    $SUDO dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
    $SUDO chown munge:munge /etc/munge/munge.key
    $SUDO chmod 400 /etc/munge/munge.key
  fi
  local as_munge=(runuser -u munge --); [ "$(id -u)" = 0 ] || as_munge=(sudo -u munge)
  "${as_munge[@]}" /usr/sbin/munged --socket=/run/munge/munge.socket.2 --pid-file=/run/munge/munged.pid
  sleep 0.5
  cp /run/munge/munged.pid "$STATE/run/munged.pid" 2>/dev/null || die "munged did not start (see /var/log/munge/munged.log)"
}

up() {
  install_packages
  down # a cluster left over from an interrupted run would hold the ports
  write_config
  chmod 755 "$STATE" "$STATE/run" 2>/dev/null || true
  start_munge
  /usr/sbin/slurmctld -f "$CONF"
  /usr/sbin/slurmd -f "$CONF" -N localhost
  for _ in $(seq 1 60); do
    if sinfo -h -o '%T' 2>/dev/null | grep -qE '^(idle|mixed|allocated)'; then
      sinfo -h -N -o 'node %N: %c CPUs, %m MB, state %T'
      return 0
    fi
    sleep 0.5
  done
  tail -20 "$STATE/log/slurmctld.log" "$STATE/log/slurmd.log" >&2 || true
  die "the Slurm node did not become idle within 30 s"
}

stop_pidfile() {
  local f="$1"
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

down() {
  stop_pidfile "$STATE/run/slurmd.pid"
  stop_pidfile "$STATE/run/slurmctld.pid"
  stop_pidfile "$STATE/run/munged.pid"
}

case "${1:-}" in
  install) install_packages ;;
  up) up ;;
  down) down ;;
  status) sinfo && squeue ;;
  *) echo "usage: scripts/slurm.sh install|up|down|status" >&2; exit 2 ;;
esac
