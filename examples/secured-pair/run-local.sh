#!/bin/sh
# A secured pair on this machine: two simulation servers, nodes a and b and
# an arbiter, with mutual TLS on raft and the peer link, and https + a
# bearer token on the admin APIs. Everything lives in ./secured-pair-run/;
# Ctrl-C stops it all. On real machines, run init-pair once on an operator
# machine and copy pki/<id>/ to member <id> only (see README.md here).
set -eu
UAMIRROR=${UAMIRROR:-uamirror}
HERE=$(cd "$(dirname "$0")" && pwd)
RUN=${RUN:-./secured-pair-run}
mkdir -p "$RUN"
cd "$RUN"

if [ ! -d pki ]; then
  "$UAMIRROR" pki init-pair --out pki --member a=127.0.0.1,localhost --member b=127.0.0.1,localhost --arbiter arb=127.0.0.1,localhost
fi
if [ ! -f admin.token ]; then
  (umask 077; od -An -tx1 -N32 /dev/urandom | tr -d ' \n' > admin.token)
fi

M="--member id=a,role=node,raft=127.0.0.1:7001,peer=127.0.0.1:7101,admin=127.0.0.1:7201
   --member id=b,role=node,raft=127.0.0.1:7002,peer=127.0.0.1:7102,admin=127.0.0.1:7202
   --member id=arb,role=arbiter,raft=127.0.0.1:7003,admin=127.0.0.1:7203"
tls() { echo "--tls-ca pki/$1/ca.crt --tls-cert pki/$1/$1.crt --tls-key pki/$1/$1.key --admin-token-file admin.token"; }

trap 'kill 0' INT TERM EXIT
"$UAMIRROR" simserver --port 4840 --vars 8 --type Double --rate 4 --changing 4 &
"$UAMIRROR" simserver --port 4841 --vars 8 --type Double &
# shellcheck disable=SC2086  # $M and $(tls …) are lists of flags
"$UAMIRROR" arbiter --id arb --data data-arb $M $(tls arb) &
# shellcheck disable=SC2086
"$UAMIRROR" node --id a --data data-a --config "$HERE/mirror.yml" $M $(tls a) &
# shellcheck disable=SC2086
"$UAMIRROR" node --id b --data data-b --config "$HERE/mirror.yml" $M $(tls b) &

cat <<MSG
In another shell, in $RUN:
  $UAMIRROR status     --node https://127.0.0.1:7201 --cacert pki/ca/ca.crt
  $UAMIRROR events     --node https://127.0.0.1:7202 --cacert pki/ca/ca.crt
  $UAMIRROR switchover --node https://127.0.0.1:7202 --cacert pki/ca/ca.crt --token-file admin.token
  $UAMIRROR switchover --node https://127.0.0.1:7202 --cacert pki/ca/ca.crt   # exit 5: no token
MSG
wait
