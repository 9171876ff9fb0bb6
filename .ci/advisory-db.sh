#!/usr/bin/env bash
# Stages the read-only RustSec snapshot in ../shared/advisory-db as the git
# checkout cargo-deny expects (db-path/<name>-<hash of the db url>), in a
# scratch directory outside the repository. Prints the db root to use as
# FAPI_ADVISORY_DB_ROOT. Nothing is fetched.
set -euo pipefail
snapshot=${1:?usage: advisory-db.sh SNAPSHOT_DIR SCRATCH_DIR}
root=${2:?usage: advisory-db.sh SNAPSHOT_DIR SCRATCH_DIR}
[ -d "$snapshot/crates" ] || { echo "no advisory snapshot at $snapshot" >&2; exit 1; }
# cargo-deny names the checkout of https://github.com/rustsec/advisory-db
# (its default db-urls) like this; a mismatch shows up as a load error.
dir="$root/advisory-db-3157b0e258782691"
rm -rf "$root"; mkdir -p "$dir"
cp -R "$snapshot"/. "$dir"/
chmod -R u+w "$dir"
# The commit carries the snapshot's own date, so staleness is judged honestly.
date=$(sed -n 's/.*(\([0-9-]*\)).*/\1/p' "$snapshot/SNAPSHOT" | head -n1)
(
  cd "$dir"
  git init -q -b main
  git add -A
  GIT_AUTHOR_DATE="${date}T00:00:00Z" GIT_COMMITTER_DATE="${date}T00:00:00Z" \
    git -c user.name=snapshot -c user.email=snapshot@localhost commit -q -m "advisory-db snapshot $date"
)
echo "$root"
