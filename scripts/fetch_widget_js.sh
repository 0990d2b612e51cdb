#!/usr/bin/env bash
# Fetch the JavaScript the static book runs in the reader's browser, from the npm registry,
# at pinned versions checked against pinned sha512 integrities, so that no page loads
# anything from a CDN (the book must work offline):
#   book/_static/widgets/  require.js + @jupyter-widgets/html-manager's embed-amd.js
#                          (renders saved ipywidgets; myst-nb's nb_ipywidgets_js in _config.yml)
#   book/_static/mathjax/  MathJax 3 (tex-mml-chtml.js and the components it loads;
#                          Sphinx's mathjax_path in _config.yml)
# Sphinx copies book/_static/ into _build/html/_static/. The files (~15 MB) are not
# committed (book/_static/.gitignore); their versions are recorded in each folder's VERSIONS.
#
#   scripts/fetch_widget_js.sh [STATIC_DIR]      (default STATIC_DIR: book/_static)
#
# Needs npm (`npm pack` only: nothing is installed, no package scripts run) the first
# time; tarballs are cached in ${CLPIPS_CACHE:-~/.cache/clpips}/npm and reused offline.
set -euo pipefail
cd "$(dirname "$0")/.."

HTML_MANAGER="@jupyter-widgets/html-manager@1.0.15"
HTML_MANAGER_SHA512="5thBIV6ymNgmPVOHvzx+gGy8ZSKmSazhtGw4/c4xJDVzRhG9PTeQsRjF3FUTopvFi//SABeNz1yp47bCrJ3CQA=="
REQUIREJS="requirejs@2.3.8"
REQUIREJS_SHA512="7/cTSLOdYkNBNJcDMWf+luFvMriVm7eYxp4BcFCsAX0wF421Vyce5SXP17c+Jd5otXKGNehIonFlyQXSowL6Mw=="
MATHJAX="mathjax@3.2.2"
MATHJAX_SHA512="Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="

STATIC=${1:-book/_static}
CACHE=${CLPIPS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/clpips}/npm
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unpack SPEC SHA512 DIR: the package's files under DIR/package (tarball cached, checked)
unpack() {
    local spec=$1 sha=$2 dir=$3 name version tarball got
    name=${spec%@*}; version=${spec##*@}
    tarball="$(echo "${name#@}" | tr / -)-$version.tgz"
    mkdir -p "$CACHE" "$dir"
    if [[ ! -f "$CACHE/$tarball" ]]; then
        command -v npm >/dev/null || { echo "fetch_widget_js: npm is needed to fetch $spec (apt-get install npm)" >&2; exit 1; }
        (cd "$CACHE" && npm pack --silent "$spec" >/dev/null)
    fi
    got=$(openssl dgst -sha512 -binary "$CACHE/$tarball" | base64 -w0)
    if [[ "$got" != "$sha" ]]; then
        rm -f "$CACHE/$tarball"
        echo "fetch_widget_js: sha512 mismatch for $spec (expected $sha, got $got); removed the cached tarball" >&2
        exit 1
    fi
    tar -xzf "$CACHE/$tarball" -C "$dir"
}

# current DEST STAMP_LINE: true when DEST holds the versions named by STAMP_LINE
current() { [[ -f "$1/VERSIONS" && "$(head -n1 "$1/VERSIONS")" == "$2" ]]; }

# install DEST STAMP_LINE: move the staged $tmp/out into DEST, with a VERSIONS file
install_staged() {
    local dest=$1 want=$2; shift 2
    { echo "$want"; echo "Fetched by scripts/fetch_widget_js.sh from the npm registry; do not edit or commit."
      printf '%s\n' "$@"; } > "$tmp/out/VERSIONS"
    rm -rf "$dest"; mkdir -p "$(dirname "$dest")"
    mv "$tmp/out" "$dest"; chmod -R a+rX "$dest"
    echo "fetch_widget_js: $want -> $dest"
}

# --- widgets: require.js + embed-amd.js (with the icon fonts it loads from beside itself)
WANT="$HTML_MANAGER $REQUIREJS"
if ! current "$STATIC/widgets" "$WANT"; then
    unpack "$HTML_MANAGER" "$HTML_MANAGER_SHA512" "$tmp/hm"
    unpack "$REQUIREJS" "$REQUIREJS_SHA512" "$tmp/rq"
    mkdir -p "$tmp/out"
    find "$tmp/hm/package/dist" -maxdepth 1 -type f \
        \( -name embed-amd.js -o -name embed.js.LICENSE.txt -o -name '*.woff' -o -name '*.woff2' \
           -o -name '*.ttf' -o -name '*.eot' -o -name '*.svg' \) -exec cp {} "$tmp/out/" \;
    cp "$tmp/hm/package/package.json" "$tmp/out/html-manager.package.json"
    cp "$tmp/rq/package/require.js" "$tmp/rq/package/package.json" "$tmp/out/"
    mv "$tmp/out/package.json" "$tmp/out/requirejs.package.json"
    install_staged "$STATIC/widgets" "$WANT" \
        "$HTML_MANAGER: BSD-3-Clause (bundled notices: embed.js.LICENSE.txt) sha512-$HTML_MANAGER_SHA512" \
        "$REQUIREJS: MIT (see the header of require.js) sha512-$REQUIREJS_SHA512"
fi

# --- MathJax: the tex-mml-chtml combined component and what it loads at run time
WANT="$MATHJAX"
if ! current "$STATIC/mathjax" "$WANT"; then
    unpack "$MATHJAX" "$MATHJAX_SHA512" "$tmp/mj"
    mkdir -p "$tmp/out/output"
    es5="$tmp/mj/package/es5"
    cp "$es5/tex-mml-chtml.js" "$tmp/mj/package/LICENSE" "$tmp/out/"
    cp -r "$es5/a11y" "$es5/adaptors" "$es5/input" "$es5/ui" "$es5/sre" "$tmp/out/"
    cp -r "$es5/output/chtml" "$es5/output/chtml.js" "$tmp/out/output/"
    install_staged "$STATIC/mathjax" "$WANT" "$MATHJAX: Apache-2.0 (LICENSE) sha512-$MATHJAX_SHA512"
fi
