# Process bookkeeping shared by stack.sh and cluster.sh (sourced, not run). The caller sets RUN (pid
# files) and LOGS, and defines say().

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }
running() { local pid; pid=$(pid_of "$1"); [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; }

# Starts a command detached from this shell (its own session), logging to $LOGS/<name>.log.
spawn() {
  local name=$1; shift
  mkdir -p "$RUN" "$LOGS"
  setsid "$@" >>"$LOGS/$name.log" 2>&1 < /dev/null &
  echo $! >"$RUN/$name.pid"
}

# SIGTERM, up to 30 s to exit, then SIGKILL.
stop_process() {
  local name=$1 pid
  pid=$(pid_of "$name")
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$pid" 2>/dev/null; then kill -9 "$pid" 2>/dev/null || true; fi
    say "$name stopped (pid $pid)"
  fi
  rm -f "$RUN/$name.pid"
}
