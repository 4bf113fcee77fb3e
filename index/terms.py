"""Lexical terms: tokenising and light stemming for BM25 and word overlap.

Shared by the indexer (which builds each generation's lexical cache, see `index/lexical.py`)
and the bot (queries, the answerer's word overlap), so it lives in `index`; `bot.sentences`
re-exports it. The cache records this file's hash, so a cache written with other terms is
never used.
"""

from __future__ import annotations

import re

# Function words and question scaffolding: they carry no evidence of an answer.
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren as at be because been
    before being below between both but by can could did didn do does doesn doing don down during
    each else ever few for from further get got had has have having he her here hers herself him
    himself his how i if in into is isn it its itself just let me might more most much must my
    myself no nor not now of off on once only or other ought our ours ourselves out over own same
    shall she should so some such than that the their theirs them themselves then there these they
    this those through to too under until up upon us very was wasn we were weren what when where
    whether which while who whom whose why will with won would yet you your yours yourself
    yourselves s t ll ve re d m
    according describe explain tell list name say says said know mention mentioned mentions
    article articles text thing things anything something please happen happened happens""".split()
) | frozenset(
    # Chat as typed in Discord: contractions without their apostrophe and filler words.
    # Unknown to a dictionary, they would otherwise count as rare names the answer must hold.
    """dont doesnt didnt cant couldnt wont wouldnt shouldnt isnt arent wasnt werent hasnt
    havent hadnt aint im ive youre youve youd theyre theyve weve whats thats theres heres
    hows whos wheres lets
    lol lmao rofl pls plz thx thanks thank ty btw imo imho idk tbh fwiw afaik iirc hey hi
    hello guys ok okay yeah yep ya u ur anyone someone anybody somebody kinda sorta gonna
    wanna gotta tho bc cuz coz bcuz rn ngl nvm ofc smh fyi""".split()
)

_WORD = re.compile(r"[^\W_]+(?:['’\-][^\W_]+)*")
# Common irregular verb forms, so "give up" meets "gave up" and "steal" meets "stolen".
_IRREGULAR = {
    "gave": "give", "given": "give", "began": "begin", "begun": "begin", "stole": "steal",
    "stolen": "steal", "took": "take", "taken": "take", "made": "make", "ran": "run",
    "went": "go", "gone": "go", "won": "win", "sold": "sell", "bought": "buy", "paid": "pay",
    "sent": "send", "spent": "spend", "brought": "bring", "held": "hold", "led": "lead",
    "left": "leave", "lost": "lose", "met": "meet", "saw": "see", "seen": "see",
    "thought": "think", "told": "tell", "wrote": "write", "written": "write", "chose": "choose",
    "chosen": "choose", "fell": "fall", "fallen": "fall", "rose": "rise", "risen": "rise",
    "knew": "know", "known": "know", "grew": "grow", "grown": "grow", "drew": "draw",
}  # fmt: skip


def stem(word: str) -> str:
    """Very light suffix stripping so 'attacks'/'attacked'/'attacking' match 'attack'."""
    w = _IRREGULAR.get(word, word)
    if len(w) > 4 and w.endswith("ies"):
        return w[:-3] + "y"
    if len(w) > 5 and w.endswith("ing"):
        w = w[:-3]
    elif len(w) > 4 and w.endswith("ed") and not w.endswith("eed"):
        w = w[:-2]
    elif len(w) > 4 and w.endswith("es") and w[-3] in "sxz":
        w = w[:-2]
    elif len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    if len(w) > 4 and w.endswith("ly"):
        w = w[:-2]
    # 'mining' -> 'min' and 'mine' -> 'min': drop a final e so both forms meet.
    if len(w) > 3 and w.endswith("e"):
        w = w[:-1]
    # 'stopped' -> 'stopp' -> 'stop'
    if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "aeiouls":
        w = w[:-1]
    return w


# Shortenings people type in chat for words documentation spells out. The answerer and the
# retriever read one as its full word only when the corpus lacks the short form itself.
_SHORT = {
    "repo": "repository", "repos": "repositories", "dir": "directory", "dirs": "directories",
    "arg": "argument", "args": "arguments", "param": "parameter", "params": "parameters",
    "env": "environment", "cmd": "command", "cmds": "commands", "pkg": "package",
    "pkgs": "packages",
    "db": "database", "msg": "message", "func": "function", "var": "variable",
    "vars": "variables", "lib": "library", "libs": "libraries", "app": "application",
    "apps": "applications", "docs": "documentation", "info": "information",
    "auth": "authentication", "perms": "permissions", "dep": "dependency",
    "deps": "dependencies", "impl": "implementation", "dev": "development",
    "prod": "production", "admin": "administrator", "config": "configuration",
    "conf": "configuration", "opt": "option", "opts": "options", "attr": "attribute",
    "attrs": "attributes", "temp": "temporary", "tmp": "temporary", "spec": "specification",
    "req": "request", "resp": "response", "src": "source", "dest": "destination",
    "ver": "version", "passwd": "password", "pw": "password", "num": "number",
    "diff": "difference", "ppl": "people", "sec": "second", "secs": "seconds",
    "nav": "navigation", "img": "image", "imgs": "images", "prev": "previous",
    "perm": "permission", "msgs": "messages", "btn": "button",
}  # fmt: skip


_LETTERS = "abcdefghijklmnopqrstuvwxyz"
MIN_TYPO_CHARS = 5  # shorter unknown words are names and jargon ("pnpm", "zsh") far more often


def typo_fixes(word: str) -> set[str]:
    """Words one typing slip away from `word` (a letter dropped, doubled, swapped with the
    next one or mistyped) that keep its first and last letters: "seperate" -> "separate".
    A name built on a word changes its ends instead ("rprompt", "mylib"), so it gets none."""
    w = word.lower()
    if len(w) < MIN_TYPO_CHARS or not w.isalpha():
        return set()
    splits = [(w[:i], w[i:]) for i in range(1, len(w))]
    out = {a + b[1:] for a, b in splits if len(b) > 1}
    out |= {a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 2}
    out |= {a + c + b[1:] for a, b in splits if len(b) > 1 for c in _LETTERS}
    out |= {a + c + b for a, b in splits for c in _LETTERS}
    out.discard(w)
    return {c for c in out if c[0] == w[0] and c[-1] == w[-1]}


def normalize_word(raw: str) -> str:
    """Lowercase, drop possessive 's and ordinal suffixes ('17th' -> '17')."""
    w = raw.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    if w[:1].isdigit():
        w = re.sub(r"(?<=\d)(st|nd|rd|th)$", "", w)
    return w


def word_spans(text: str) -> list[re.Match[str]]:
    """The word tokens of `words`, with where they stand in `text`."""
    return list(_WORD.finditer(text))


def words(text: str) -> list[str]:
    """Raw word tokens (original case), with internal apostrophes/hyphens kept."""
    return _WORD.findall(text)


def tokenize(text: str) -> list[str]:
    """Content terms: lowercase, stopwords removed, lightly stemmed. Used for BM25 and overlap."""
    return _terms(text)


# Metasyntactic names: in a question they stand for the asker's own thing ("import { foo }",
# "~/foo"), which the documentation can't name; its examples use them for theirs.
_PLACEHOLDERS = frozenset(
    "foo baz qux quux foobar corge grault garply waldo plugh xyzzy thud hoge fuga piyo".split()
)


def placeholders(text: str) -> set[str]:
    """The placeholder names in `text` (normalized): "foo" and its kin, and "bar" beside them
    ("foo bar"; alone, "bar" is a word: "progress bar")."""
    said = {normalize_word(w) for w in words(text)}
    found = said & _PLACEHOLDERS
    return found | ({"bar"} & said) if found else set()


# A symbol typed alone ("why does it show %% where i wrote one %", "what does * do here")
# is asked about by the name documentation writes for it ("percent signs are doubled").
_SYMBOL_NAMES = {
    "%": "percent", "*": "asterisk", "/": "slash", "\\": "backslash", "~": "tilde",
    "&": "ampersand", "|": "pipe", "^": "caret", "#": "hash", ";": "semicolon",
}  # fmt: skip
_LONE_SYMBOL = re.compile(
    rf"(?:^|(?<=[\s\"'`(\[{{,]))([{re.escape(''.join(_SYMBOL_NAMES))}])\1*"
    r"(?=$|[\s\"'`)\]}]|[,.!:?](?:\s|$))"
)
# Between two words these join them, as "or" and "and" do ("no ETA / remaining time",
# "backup & restore"): no symbol is asked about.
_JOINING = frozenset("&|/")
_WORD_SPACE = re.compile(r"\w\s")
_SPACE_WORD = re.compile(r"\s\w")


def symbol_names(text: str) -> list[str]:
    """The names of the symbols typed alone in `text`, not inside code ("2>&1", "*.txt") nor
    joining two words."""
    out = []
    for m in _LONE_SYMBOL.finditer(text):
        a, b = m.span()
        joining = (
            m.group(1) in _JOINING
            and _WORD_SPACE.fullmatch(text[max(0, a - 2) : a])
            and _SPACE_WORD.fullmatch(text[b : b + 2])
        )
        if not joining:
            out.append(_SYMBOL_NAMES[m.group(1)])
    return list(dict.fromkeys(out))


def is_content(word: str) -> bool:
    """A normalized word that carries content: no stop word, no lone letter (digits count)."""
    return word not in STOPWORDS and (len(word) >= 2 or word.isdigit())


def _terms(text: str) -> list[str]:
    out = []
    for raw in words(text):
        w = normalize_word(raw)
        if is_content(w):
            out.append(stem(w))
    return out


# Stem of a shortening -> stem of its full word ("repos" -> "repo" -> "repository").
SPELLED_OUT = {stem(short): stem(full) for short, full in _SHORT.items()}


# --- acronyms ------------------------------------------------------------------------------

# Joiners inside a multi-word name when taking its initials ("Republic of Korea").
NAME_JOINERS = frozenset({"of", "and", "the", "for", "de"})
_CAPITAL = r"[^\W\d_a-z][^\W\d_]*(?:['’][^\W\d_]+)?"  # no \p{Lu} in re: checked again below
# A run of capitalised words on one line, joiners allowed between them.
_JOINER = "|".join(sorted(NAME_JOINERS))
_NAME_RUN = re.compile(rf"(?<![\w'’]){_CAPITAL}(?:[ \t]+(?:(?:{_JOINER})[ \t]+)*{_CAPITAL})+")


def is_acronym(word: str) -> bool:
    """All capitals, two letters or more ("KDB", "NGOs")."""
    core = word[:-1] if len(word) > 2 and word.endswith("s") else word  # "NGOs"
    return len(core) >= 2 and core.isalpha() and core.isupper()


def acronym_key(word: str) -> str:
    """An acronym lowercased, without a plural s: how initials are compared."""
    w = word.lower()
    return w[:-1] if len(w) > 2 and word[-1] == "s" and word[:-1].isupper() else w


def initialisms(text: str) -> dict[str, str]:
    """Initials of the runs of capitalised words, each with its run: 'kdb' -> 'Korea
    Development Bank', 'dprk' -> 'Democratic People's Republic of Korea' (joiners don't
    count; a run ends at a line's end or any punctuation)."""
    out: dict[str, str] = {}

    def add(run: list[str]) -> None:
        while run and run[-1].lower() in NAME_JOINERS:
            run.pop()
        caps = [w for w in run if w.lower() not in NAME_JOINERS]
        if len(caps) >= 2:
            out.setdefault("".join(w[0] for w in caps).lower(), " ".join(run))

    for m in _NAME_RUN.finditer(text):
        run: list[str] = []
        for w in m.group(0).split():
            if w[0].isupper() or (run and w.lower() in NAME_JOINERS):
                run.append(w)
            else:  # a lowercase letter the pattern's class lets through ("élan")
                add(run)
                run = []
        add(run)
    return out
