#!/usr/bin/env bash
# Starts or stops the test mail servers in the background, for the browser tests, the bench and
# a dev setup: a real SMTP server (Debian's aiosmtpd, writing every mail it accepts to a Maildir)
# and the recording HTTP SMS gateway (deploy/sms-gateway.py, one JSON line per message).
#
#   deploy/test-mail-servers.sh start | stop | status | restart-smtp | stop-smtp | start-smtp
#
# Environment (defaults):
#   LIKENESS_MAIL_DIR   /tmp/likeness-mail     pid files, logs; Maildir and SMS log below it
#   LIKENESS_SMTP_PORT  2525                   SMTP on 127.0.0.1 (smtp_url smtp://127.0.0.1:PORT)
#   LIKENESS_MAILDIR    $LIKENESS_MAIL_DIR/maildir   (mails in new/)
#   LIKENESS_SMS_PORT   9025                   gateway on 127.0.0.1 (url http://127.0.0.1:PORT/sms)
#   LIKENESS_SMS_LOG    $LIKENESS_MAIL_DIR/sms.jsonl
#   LIKENESS_SMS_FAIL   $LIKENESS_MAIL_DIR/sms.fail    (while this file exists the gateway answers 503)
# `start` prints what it started as shell assignments (LIKENESS_SMTP_URL=..., LIKENESS_SMS_URL=...),
# so `eval "$(deploy/test-mail-servers.sh start)"` sets them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

dir="${LIKENESS_MAIL_DIR:-/tmp/likeness-mail}"
smtp_port="${LIKENESS_SMTP_PORT:-2525}"
maildir="${LIKENESS_MAILDIR:-$dir/maildir}"
sms_port="${LIKENESS_SMS_PORT:-9025}"
sms_log="${LIKENESS_SMS_LOG:-$dir/sms.jsonl}"
sms_fail="${LIKENESS_SMS_FAIL:-$dir/sms.fail}"
mkdir -p "$dir"

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

wait_port() {
  local port=$1 what=$2
  for _ in $(seq 1 200); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  echo "$what did not listen on 127.0.0.1:$port (see $dir/*.log)" >&2
  return 1
}

stop_pid() {
  local pidfile=$1
  if running "$pidfile"; then
    local pid
    pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
  fi
  rm -f "$pidfile"
}

start_smtp() {
  if running "$dir/smtp.pid"; then return 0; fi
  /usr/bin/python3 -c 'import aiosmtpd' 2>/dev/null || deploy/mail-servers.sh
  # aiosmtpd makes a Maildir only where no directory exists: make all three parts.
  mkdir -p "$maildir/tmp" "$maildir/new" "$maildir/cur"
  nohup /usr/bin/python3 -m aiosmtpd -n -l "127.0.0.1:$smtp_port" -c aiosmtpd.handlers.Mailbox "$maildir" \
    >>"$dir/smtp.log" 2>&1 </dev/null &
  echo $! >"$dir/smtp.pid"
  wait_port "$smtp_port" aiosmtpd
}

start_sms() {
  if running "$dir/sms.pid"; then return 0; fi
  nohup /usr/bin/python3 deploy/sms-gateway.py --port "$sms_port" --log "$sms_log" --fail-file "$sms_fail" \
    >>"$dir/sms.log" 2>&1 </dev/null &
  echo $! >"$dir/sms.pid"
  wait_port "$sms_port" sms-gateway.py
}

print_env() {
  echo "LIKENESS_SMTP_URL=smtp://127.0.0.1:$smtp_port"
  echo "LIKENESS_MAILDIR=$maildir"
  echo "LIKENESS_SMS_URL=http://127.0.0.1:$sms_port/sms"
  echo "LIKENESS_SMS_LOG=$sms_log"
}

case "${1:-}" in
  start) start_smtp; start_sms; print_env ;;
  stop) stop_pid "$dir/smtp.pid"; stop_pid "$dir/sms.pid" ;;
  start-smtp) start_smtp ;;
  stop-smtp) stop_pid "$dir/smtp.pid" ;;
  restart-smtp) stop_pid "$dir/smtp.pid"; start_smtp ;;
  status)
    running "$dir/smtp.pid" && echo "smtp: running (pid $(cat "$dir/smtp.pid"), port $smtp_port, $maildir)" || echo "smtp: stopped"
    running "$dir/sms.pid" && echo "sms: running (pid $(cat "$dir/sms.pid"), port $sms_port, $sms_log)" || echo "sms: stopped"
    ;;
  *) echo "usage: $0 start|stop|status|start-smtp|stop-smtp|restart-smtp" >&2; exit 2 ;;
esac
