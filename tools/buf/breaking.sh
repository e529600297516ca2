#!/usr/bin/env bash
# buf breaking for the API's current epoch (protos/EPOCH names it; a deliberate v1 break bumps it in
# the same commit). The protos must be wire- and source-compatible with:
#  - the commit that started this epoch (every file that existed then),
#  - the commit that added each proto file since then (files that came later),
#  - main, when this is not main and main has the same epoch (a branch must not break what landed).
# Comparing main with itself, as CI on a clone of main would, checks nothing; the epoch's commits
# are in any clone with history. A clone without that history (shallow) says it cannot check.
set -euo pipefail
buf=${BUF:-.venv/bin/buf}
epoch=$(cat protos/EPOCH)
if [ "$(git show HEAD:protos/EPOCH 2>/dev/null)" != "$epoch" ]; then
  echo "buf breaking: skipped: protos/EPOCH is being bumped to $epoch (a deliberate break; commit it with the break)"
  exit 0
fi
epoch_start=$(git log -1 --format=%H -- protos/EPOCH)
if [ "$(git rev-parse --is-shallow-repository)" = true ] || [ -z "$epoch_start" ]; then
  echo "buf breaking: NOT CHECKED: no git history for protos/EPOCH (a shallow clone?)" >&2
  exit 0
fi
refs=("$epoch_start")
while read -r file; do
  [ -n "$file" ] || continue
  refs+=("$(git log --diff-filter=A --format=%H -1 -- "$file")")
done < <(git diff --name-only --diff-filter=A "$epoch_start" HEAD -- 'protos/*.proto')
if git rev-parse -q --verify main >/dev/null && [ "$(git rev-parse HEAD)" != "$(git rev-parse main)" ] &&
  [ "$(git show main:protos/EPOCH 2>/dev/null)" = "$epoch" ]; then
  refs+=("$(git rev-parse main)")
fi
git_dir=$(git rev-parse --git-common-dir)
mapfile -t refs < <(printf '%s\n' "${refs[@]}" | sort -u)
for ref in "${refs[@]}"; do
  "$buf" breaking --against "$git_dir#ref=$ref"
done
echo "buf breaking: compatible with ${#refs[@]} earlier state(s) of epoch $epoch"
