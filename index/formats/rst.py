"""reStructuredText via docutils: rendered to HTML5 and read like any page (`parse_page`).

Safety: no file insertion (`include`, `csv-table :file:`...), no `raw`, no docutils config
files, no report output; a document never halts the parser (`halt_level` 5).

Sphinx markup is not docutils': for every directive and role name a document uses that
docutils does not know, a generic handler is registered first, so Sphinx sources read well
instead of losing blocks:

- roles (`:func:`, `:ref:`, `:py:meth:`, ...) become their display text (`:ref:`the install
  <install>`` -> "the install"; `~a.b.c` -> "c"), code-like ones as inline code;
- directives whose body is not prose (`toctree`, `auto*`, `index`, `literalinclude`, ...) are
  skipped; any other unknown directive (`versionadded`, `seealso`, `py:function`, `tab`...)
  keeps its argument line and its body, parsed as reStructuredText;
- `code-block` / `sourcecode` accept Sphinx's options (`:caption:`, `:linenos:`...).
"""

from __future__ import annotations

import re
import threading

from index.formats import Parsed, first_heading, one_line
from index.structure import TextBuilder

_ROLE_USE = re.compile(r"(?<![\w`\\]):([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?):`")
_DIRECTIVE_USE = re.compile(
    r"^[ \t]*\.\.[ \t]+([A-Za-z][\w.+-]*(?::[A-Za-z][\w.+-]*)?)[ \t]*::", re.M
)
_CODE_ROLES = frozenset(
    """func meth class attr mod data const exc obj envvar option command program file samp
    kbd makevar regexp member var type macro struct enum function""".split()
)
_SKIP_DIRECTIVES = frozenset(
    """toctree index highlight currentmodule module literalinclude tabularcolumns
    sectionauthor codeauthor moduleauthor testsetup testcleanup graphviz digraph graph
    inheritance-diagram plot todolist glossary-index default-domain default-role
    automodule autoclass autofunction automethod autoattribute autodata autoexception
    autosummary automodapi autoprogram todo""".split()
)
# Their argument is a condition, not text: only the body is kept.
_CONDITIONAL_DIRECTIVES = frozenset({"only", "ifconfig"})
_VERSION_LABELS = {
    "versionadded": "Added in version {}",
    "versionchanged": "Changed in version {}",
    "deprecated": "Deprecated since version {}",
    "versionremoved": "Removed in version {}",
    "seealso": "See also",
}
_lock = threading.Lock()
_registered: set[str] = set()


def _display(text: str) -> str:
    m = re.fullmatch(r"(.*?)\s*<([^<>]*)>", text, re.S)
    if m and m.group(1).strip():
        text = m.group(1)
    elif m:
        text = m.group(2)
    text = text.lstrip("!")
    if text.startswith("~"):
        text = text[1:].rsplit(".", 1)[-1]
    return " ".join(text.split())


def _register_role(name: str) -> None:
    from docutils import nodes, utils
    from docutils.parsers.rst import roles

    base = name.rsplit(":", 1)[-1].lower()
    code = base in _CODE_ROLES or ":" in name

    def role(role_name, rawtext, text, lineno, inliner, options=None, content=None):  # noqa: ARG001
        shown = _display(utils.unescape(text))
        node = nodes.literal(rawtext, shown) if code else nodes.inline(rawtext, shown)
        return [node], []

    roles.register_local_role(name, role)


def _register_directive(name: str) -> None:
    from docutils import nodes
    from docutils.parsers.rst import Directive, directives

    base = name.rsplit(":", 1)[-1].lower()

    class _AnyOption(dict):
        def __missing__(self, key: str):
            return directives.unchanged

    if base in _SKIP_DIRECTIVES or base.startswith("auto"):

        class Skip(Directive):
            optional_arguments = 100
            final_argument_whitespace = True
            has_content = True
            option_spec = _AnyOption(skip=directives.unchanged)

            def run(self):
                return []

        directives.register_directive(name, Skip)
        return

    label = _VERSION_LABELS.get(base)

    class Keep(Directive):
        optional_arguments = 1
        final_argument_whitespace = True
        has_content = True
        option_spec = _AnyOption(keep=directives.unchanged)

        def run(self):
            box = nodes.container()
            argument = " ".join(" ".join(self.arguments).split())
            line = "" if base in _CONDITIONAL_DIRECTIVES else argument
            if label and "{}" in label:  # "1.2 The reset call." -> version and text
                version, _, rest = argument.partition(" ")
                line = f"{label.format(version)}: {rest}" if rest else f"{label.format(version)}."
            elif label:
                line = label + (f": {argument}" if argument else ":")
            if line:  # parsed inline, so roles in it read as in a paragraph
                children, messages = self.state.inline_text(line, self.lineno)
                box += nodes.paragraph(line, "", *children)
                box += messages
            if self.content:
                self.state.nested_parse(self.content, self.content_offset, box)
            return [box]

    directives.register_directive(name, Keep)


def _register_code_block() -> None:
    from docutils.parsers.rst import directives
    from docutils.parsers.rst.directives.body import CodeBlock

    class _AnyOption(dict):
        def __missing__(self, key: str):
            return directives.unchanged

    class SphinxCodeBlock(CodeBlock):
        option_spec = _AnyOption(CodeBlock.option_spec)

        def run(self):
            self.options = {k: v for k, v in self.options.items() if k in CodeBlock.option_spec}
            return super().run()

    for name in ("code-block", "sourcecode"):
        directives.register_directive(name, SphinxCodeBlock)


def _known_directive(name: str) -> bool:
    from docutils.parsers.rst import directives
    from docutils.parsers.rst.languages import en

    key = name.lower()
    return (
        key in directives._directives  # noqa: SLF001 (registered, incl. ours)
        or key in directives._directive_registry  # noqa: SLF001
        or key in en.directives
    )


def _known_role(name: str) -> bool:
    from docutils.parsers.rst import roles
    from docutils.parsers.rst.languages import en

    key = name.lower()
    return key in roles._roles or key in roles._role_registry or key in en.roles  # noqa: SLF001


def _prepare(source: str) -> None:
    """Register generic handlers for the Sphinx roles and directives `source` uses."""
    with _lock:
        if "code-block" not in _registered:
            _register_code_block()
            _registered.add("code-block")
        for name in set(_DIRECTIVE_USE.findall(source)):
            if name.lower() not in _registered and not _known_directive(name):
                _register_directive(name.lower())
                _registered.add(name.lower())
        for name in set(_ROLE_USE.findall(source)):
            if name.lower() not in _registered and not _known_role(name):
                _register_role(name.lower())
                _registered.add(name.lower())


_SETTINGS = {
    "report_level": 5,  # no system messages in the output
    "halt_level": 5,  # never stop on errors
    "warning_stream": False,
    "file_insertion_enabled": False,
    "raw_enabled": False,
    "_disable_config": True,
    "input_encoding": "unicode",
    "syntax_highlight": "none",  # plain <pre><code>: code text exactly as written
    "doctitle_xform": False,  # the top heading stays a section (with its id)
    "sectsubtitle_xform": False,
    "initial_header_level": 1,
    "toc_backlinks": "none",
    "footnote_backlinks": False,
    "embed_stylesheet": False,
    "stylesheet_path": "",
    "smart_quotes": False,
}
_NOT_LANGUAGES = frozenset({"code", "literal-block", "doctest", "doctest-block"})


def rst_to_html(source: str) -> str:
    from docutils.core import publish_parts
    from docutils.writers.html5_polyglot import Writer

    _prepare(source)
    parts = publish_parts(source=source, writer=Writer(), settings_overrides=_SETTINGS)
    return parts["body"]


def parse_rst(raw: bytes, stem: str) -> Parsed:
    from index.html import parse_html, parse_page
    from index.loader import _decode  # the one decoding policy of text formats

    source = _decode(raw)
    try:
        body = rst_to_html(source)
    except RecursionError as exc:
        raise ValueError("unparsable reStructuredText: nested too deeply") from exc
    except Exception as exc:  # docutils raises its own types (SystemMessage, ...)
        raise ValueError(f"unparsable reStructuredText: {exc or type(exc).__name__}") from exc
    doc = parse_html(f'<html><body><div role="main">{body}</div></body></html>')
    for pre in doc.iter("pre"):
        classes = (pre.get("class") or "").split()
        if "code" in classes:  # docutils: <pre class="code python literal-block">
            langs = [c for c in classes if c not in _NOT_LANGUAGES]
            if langs:
                pre.set("class", " ".join([*classes, f"language-{langs[0]}"]))
    builder = TextBuilder()
    facts = parse_page(doc, builder)
    text, sections, code = builder.build()
    title = one_line(facts["h1"]) or first_heading(sections)
    return Parsed(text, title or stem, sections=sections, code=code)
