# bench/lib.sh: sourced by the bench/<name> scripts (POSIX sh).
#
# This machine is a 2-core VM: the host may run other guests on our cores.
# The time it takes away ("steal", the 8th field of /proc/stat's cpu line)
# moves a run's figures more than anything in herald does (on one binary,
# webhooks runs with 9% steal and with 39% differ by 2.5x), so each bench
# reports the steal over its timed phase beside its figures.

# steal_mark: prints "steal total" (clock ticks, all cores) for steal_pct
steal_mark() {
  awk '/^cpu / { t = 0; for (i = 2; i <= 9; i++) t += $i; print $9, t; exit }' /proc/stat
}

# steal_pct MARK_BEFORE MARK_AFTER: the share of the machine's CPU time the
# host took between the two marks, in percent
steal_pct() {
  echo "$1 $2" | awk '{ d = $4 - $2; printf "%.1f", (d > 0 ? ($3 - $1) * 100 / d : 0) }'
}

# json_with LINE KEY VALUE: the JSON object LINE with one more numeric field
json_with() {
  printf '%s\n' "$1" | sed "s/}\$/,\"$2\":$3}/"
}
