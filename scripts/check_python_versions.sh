#!/usr/bin/env bash
# Installs kerascv-tl the way a user does (`pip install "kerascv-tl[test]"` from the source tree, not editable)
# into a fresh venv for each Python 3.x that pyenv has, then, from an empty folder outside the clone, runs
# `kerascv-tl demo` and the example notebooks (tests/examples/test_notebooks.py, nbclient). Ends with a table
#   python | install | demo | notebooks | seconds
# and exits 1 when anything failed. A Python outside pyproject's requires-python is listed as skipped.
#
# Python 3.11 (CI's) installs with -c constraints.txt; the others try the same constraints first and, when
# they do not install there, fall back to pyproject's ranges only (the table says which).
# Installs run one after another (TensorFlow is large; pip's cache makes the second and later ones quicker).
#
# Usage: scripts/check_python_versions.sh [WORK_DIR]     (default /tmp/kerascv_tl_pythons)
# Environment: PYTHONS="3.10 3.11 3.12 3.13" (minor versions to try), PYENV_ROOT (default ~/.pyenv),
#   KERASCV_TL_ASSETS (default /work/shared/assets when it exists; without it the demo uses random weights),
#   STEPS="install demo notebooks" (a subset re-runs the later steps on the venvs already built).
set -u -o pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
WORK=${1:-${KERASCV_TL_PYTHONS_DIR:-/tmp/kerascv_tl_pythons}}
PYENV_ROOT=${PYENV_ROOT:-$HOME/.pyenv}
PYTHONS=${PYTHONS:-"3.10 3.11 3.12 3.13"}
STEPS=${STEPS:-"install demo notebooks"}
CI_PYTHON=3.11
CONSTRAINTS=$REPO/constraints.txt
if [[ -z "${KERASCV_TL_ASSETS:-}" && -d /work/shared/assets ]]; then
  export KERASCV_TL_ASSETS=/work/shared/assets
fi
REQUIRES_PYTHON=$(sed -nE 's/^requires-python *= *"([^"]+)".*/\1/p' "$REPO/pyproject.toml")

mkdir -p "$WORK/logs"
echo "repo $REPO -> work folder $WORK; requires-python $REQUIRES_PYTHON; assets ${KERASCV_TL_ASSETS:-(none: random weights)}"

# The source tree as a clone would have it (tracked and new files, nothing git ignores), copied so that
# building the wheel leaves no build/ or egg-info in the working tree.
SRC=$WORK/src
rm -rf "$SRC" && mkdir -p "$SRC"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
  [[ -e "$f" ]] && printf '%s\0' "$f"
done | xargs -0 cp --parents -t "$SRC") || { echo "could not copy the source tree to $SRC" >&2; exit 2; }

has_step() { [[ " $STEPS " == *" $1 "* ]]; }

rows=()
failed=0
for minor in $PYTHONS; do
  start=$SECONDS
  install="-" demo="-" notebooks="-"
  python=$(ls -d "$PYENV_ROOT"/versions/"$minor".* 2>/dev/null | sort -V | tail -1)
  if [[ -z "$python" || ! -x "$python/bin/python" ]]; then
    rows+=("$minor|not found in $PYENV_ROOT/versions|-|-|0")
    continue
  fi
  python=$python/bin/python
  version=$("$python" -c 'import platform; print(platform.python_version())')
  log=$WORK/logs/$version
  venv=$WORK/venv-$version
  echo "== Python $version"
  if ! "$python" -c 'import sys; from pip._vendor.packaging.specifiers import SpecifierSet as S
sys.exit(sys.argv[2] not in S(sys.argv[1]))' "$REQUIRES_PYTHON" "$version" 2>/dev/null; then
    echo "   outside requires-python $REQUIRES_PYTHON: skipped"
    rows+=("$version|skip (requires-python $REQUIRES_PYTHON)|-|-|0")
    continue
  fi

  if has_step install; then
    fresh_venv() {
      rm -rf "$venv" && "$python" -m venv "$venv" && "$venv/bin/python" -m pip install --quiet --upgrade pip
    }
    t=$SECONDS
    if fresh_venv >"$log-install.log" 2>&1 && "$venv/bin/python" -m pip install -c "$CONSTRAINTS" "$SRC[test]" >>"$log-install.log" 2>&1; then
      install="ok, constraints"
    elif [[ "$minor" == "$CI_PYTHON" ]]; then
      install="FAIL, constraints"
    else
      echo "   constraints.txt does not install on $version (see $log-install.log): installing with pyproject ranges only"
      if fresh_venv >"$log-install-ranges.log" 2>&1 && "$venv/bin/python" -m pip install "$SRC[test]" >>"$log-install-ranges.log" 2>&1; then
        install="ok, ranges only"
      else
        install="FAIL, ranges only"
      fi
    fi
    install="$install $((SECONDS - t))s"
    echo "   install: $install (log $log-install*.log)"
  elif [[ -x "$venv/bin/kerascv-tl" ]]; then
    install="kept"
  else
    install="FAIL, no venv"
  fi

  if [[ "$install" != FAIL* ]]; then
    empty=$WORK/empty-$version
    rm -rf "$empty" && mkdir -p "$empty"
    # The package must come from the venv's site-packages, not from a source tree.
    where=$(cd "$empty" && "$venv/bin/python" -c 'import kerascv_tl; print(kerascv_tl.__file__)' 2>&1)
    if [[ "$where" != "$venv"/* ]]; then
      echo "   kerascv_tl is not imported from $venv: $where"
      install="FAIL, imports $where"
    fi
  fi
  if [[ "$install" != FAIL* ]]; then
    if has_step demo; then
      t=$SECONDS
      if (cd "$empty" && timeout 1800 "$venv/bin/kerascv-tl" demo) >"$log-demo.log" 2>&1; then
        demo="ok"
      else
        demo="FAIL"
      fi
      demo="$demo $((SECONDS - t))s"
      echo "   demo: $demo (log $log-demo.log; last line: $(tail -1 "$log-demo.log"))"
    fi
    notebook_test=$(ls "$SRC"/tests/examples/test_notebooks.py "$SRC"/tests/test_notebooks.py 2>/dev/null | head -1)
    if has_step notebooks; then
      if ! ls "$SRC"/examples/*.ipynb >/dev/null 2>&1; then
        notebooks="none"
      elif [[ -z "$notebook_test" ]]; then
        notebooks="no test file"
      else
        t=$SECONDS
        # From the empty folder: pytest's rootdir is the copied tree (its pyproject), sys.path has the empty
        # folder first, so kerascv_tl is the installed one; each notebook runs in its own temporary folder.
        if (cd "$empty" && timeout 2400 "$venv/bin/python" -m pytest -q -p no:cacheprovider "$notebook_test") \
          >"$log-notebooks.log" 2>&1; then
          notebooks="ok"
        else
          notebooks="FAIL"
        fi
        notebooks="$notebooks $((SECONDS - t))s"
        echo "   notebooks: $notebooks (log $log-notebooks.log; $(tail -1 "$log-notebooks.log"))"
      fi
    fi
  fi
  rows+=("$version|$install|$demo|$notebooks|$((SECONDS - start))")
done

echo
{
  echo "python|install|demo|notebooks|seconds"
  printf '%s\n' "${rows[@]}"
} | column -t -s '|' -o ' | '
for row in "${rows[@]}"; do
  [[ "$row" == *FAIL* ]] && failed=1
done
exit $failed
