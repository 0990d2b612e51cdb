#!/usr/bin/env bash
# Do the chapters glue the same values at git revision REV and in the working tree?
#
#   scripts/glue_diff.sh REV [-p NAME VALUE ...] [-c CHAPTER ...] [-k DIR]
#
# Executes each chapter twice with this checkout's .venv, `python -m clpips run NAME --out DIR`:
# at REV (in a temporary `git worktree`, with CLPIPS_REPO_ROOT and PYTHONPATH pointing at it, so
# the kernel imports REV's clpips) and in the working tree, each into its own out folder; then
# compares their glue JSONs (scripts/glue_values.py) over the chapters present in both, printing
# every difference and exiting 1 if there is any (timings are skipped, see glue_values.py).
#   -p NAME VALUE   a parameter for every chapter that declares it (passed on to `clpips run`)
#   -c CHAPTER      run only these chapters (repeatable; default: every chapter in both trees)
#   -k DIR          keep the out folders and JSONs in DIR (default: a temporary folder, removed)
# The data and caches come from the environment as for `make book` (CLPIPS_DATA_MIRROR, ...).
set -euo pipefail

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
[[ $# -ge 1 && $1 != -* ]] || usage
REV=$1; shift
ROOT=$(git rev-parse --show-toplevel)
PY="$ROOT/.venv/bin/python"
[[ -x $PY ]] || { echo "glue_diff: no $PY (run make book once to create .venv)" >&2; exit 2; }
git -C "$ROOT" rev-parse --verify --quiet "$REV^{commit}" >/dev/null || { echo "glue_diff: unknown revision $REV" >&2; exit 2; }

PARAMS=(); CHAPTERS=(); KEEP=""
while [[ $# -gt 0 ]]; do
  case $1 in
    -p) [[ $# -ge 3 ]] || usage; PARAMS+=(-p "$2" "$3"); shift 3 ;;
    -c) [[ $# -ge 2 ]] || usage; CHAPTERS+=("$2"); shift 2 ;;
    -k) [[ $# -ge 2 ]] || usage; KEEP=$2; shift 2 ;;
    *) usage ;;
  esac
done

WORK=${KEEP:-$(mktemp -d -t glue_diff.XXXXXX)}
mkdir -p "$WORK"
TREE="$WORK/rev-tree"
cleanup() {
  git -C "$ROOT" worktree remove --force "$TREE" >/dev/null 2>&1 || true
  [[ -n $KEEP ]] || rm -rf "$WORK"
}
trap cleanup EXIT
git -C "$ROOT" worktree add --detach --force "$TREE" "$REV" >/dev/null

chapters_of() { (cd "$1/notebooks" && ls [0-9][0-9]_*.py 2>/dev/null | sed 's/\.py$//'); }
if [[ ${#CHAPTERS[@]} -eq 0 ]]; then
  mapfile -t CHAPTERS < <(comm -12 <(chapters_of "$TREE" | sort) <(chapters_of "$ROOT" | sort))
fi

run_side() {  # run_side LABEL TREE: every chapter of TREE into $WORK/LABEL, then its glue JSON
  local label=$1 tree=$2 out="$WORK/$1"
  mkdir -p "$out"
  for chapter in "${CHAPTERS[@]}"; do
    [[ -f $tree/notebooks/$chapter.py ]] || { echo "glue_diff: $label has no $chapter, skipped" >&2; continue; }
    echo "glue_diff: $label: running $chapter" >&2
    (cd "$tree" && CLPIPS_REPO_ROOT="$tree" PYTHONPATH="$tree${PYTHONPATH:+:$PYTHONPATH}" \
       "$PY" -m clpips run "$chapter" --out "$out" "${PARAMS[@]}" >"$out/$chapter.log" 2>&1) \
      || { echo "glue_diff: $label: $chapter failed, see $out/$chapter.log" >&2; tail -5 "$out/$chapter.log" >&2; }
  done
  "$PY" "$ROOT/scripts/glue_values.py" "$out" --out "$WORK/$label.json"
}

run_side before "$TREE"
run_side after "$ROOT"
"$PY" "$ROOT/scripts/glue_values.py" compare "$WORK/before.json" "$WORK/after.json" --only "${CHAPTERS[@]}"
