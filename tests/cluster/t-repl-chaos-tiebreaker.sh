#!/usr/bin/env bash
# t-repl-chaos with c a diskless tie-breaker: random kill -9 / partition /
# move steps over a, b (data) and c (votes only) with the checker writing:
# no acknowledged write lost, a = b.
# shellcheck source-path=SCRIPTDIR source=t-repl-chaos.sh
URBD_CHAOS_DISKLESS=c
source "$(dirname "$0")/t-repl-chaos.sh"
