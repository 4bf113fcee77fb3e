"""What a chat message asks, without the words that frame it.

People in a Discord server rarely type a bare question. They greet ("hey everyone,"),
announce ("quick question:", "noob here"), apologise ("sorry if this is a dumb question")
and thank ("thanks in advance!", "any help appreciated 🙏"). None of it says what is asked,
no document holds it, and it pulls both the question's vector and its words away from the
passage that answers: "hey everyone, how can debian upgrade programs that are running right
now thanks in advance!" was declined where the bare question was answered.

`core_question` takes such framing off the start and the end of a message, and only there:
"how do I thank a contributor" and "what does the 'quick' option do" keep every word. The
phrases are general chat English, not words of any corpus. A message that is nothing but
framing ("hi all!") is returned as typed. It also reads past what is typed around the
question rather than asked: Discord's formatting marks, links, a code block or traceback
pasted with it, a message in capitals (read in lower case) and "???".
"""

from __future__ import annotations

import re

_END = r"(?:\s*[,.:;!?\-–—…]+\s*|\s+|$)"  # what may follow a framing phrase
_ALL = r"(?:all|everyone|everybody|guys|folks|people|team|there|y'?all|friends|devs|gang)"
_ADJ = (
    r"(?:quick|simple|small|short|easy|dumb|stupid|silly|noob|newbie|beginner|basic|"
    r"general|random|probably\s+(?:dumb|stupid|silly|obvious))"
)

# What an opener like "so" must be followed by to be one ("so far, ..." keeps its "so").
_ASKS = (
    r"\s*,?\s+(?:how|what|why|when|where|which|who|whats|is|are|does|do|did|can|could|"
    r"should|would|will|i|my|we|if|there)\b"
)

_HELP_WANTED = (
    r"any\s+(?:help|ideas?|pointers?|advice|hints?|tips?)(?:\s+(?:is|are|would\s+be))?"
    r"(?:\s+(?:much|greatly|really|very|highly))?\s+appreciated"
)

_HELP_ASKED = _HELP_WANTED.replace(r"\s+appreciated", r"(?:\s+appreciated)?")

_LEADING = re.compile(
    r"(?i)^\W*(?:"
    # greetings, with whom they greet
    rf"(?:hi|hey|heya|hiya|hello|hallo|howdy|yo|greetings|gm|"
    rf"good\s+(?:morning|afternoon|evening|day))(?:\s+{_ALL})?(?:\s+{_ALL})?"
    # announcing the question
    rf"|(?:i\s+have\s+|i've\s+got\s+|got\s+|just\s+)?(?:a\s+)?{_ADJ}\s+(?:question|q)"
    rf"(?:\s+(?:for\s+(?:you\s+)?{_ALL}|here))?"
    rf"|(?:i\s+have|i've\s+got|got)\s+a\s+question(?:\s+(?:for\s+(?:you\s+)?{_ALL}|here))?"
    r"|question(?=\s*:)"
    # a label of urgency ("URGENT:", "[help]", "asap!")
    r"|\[\s*(?:urgent|asap|help|important|question)\s*\]"
    r"|(?:urgent|asap|help|important|sos)(?=\s*[:!])"
    r"|(?:noob|newbie|beginner)\s+here"
    # introducing what was pasted (the block itself is gone): "here is my code:"
    r"|(?:here(?:'s|\s+is|\s+are)\s+)?(?:my|the)\s+(?:code|error|output|traceback|"
    r"stack\s*trace|logs?|config|setup)(?=\s*[:.])"
    # thinking aloud before asking
    rf"|(?:(?:ok(?:ay)?|alright|right|um+|uh+|hm+)\s*,?\s+)?so(?:\s+basically(?=\s+\w)|(?={_ASKS}))"
    r"|basically(?=\s+\w)|(?:um+|uh+|hm+)(?=\W)"
    r"|(?:i\s+was\s+|i'?m\s+|just\s+)?wondering(?:\s+(?=if\b|whether\b))?"
    r"|i\s+wonder(?=\s+(?:if|whether|how|why|what|when|where|which|who)\b)"
    r"|(?:i\s+(?:want|wanted|would\s+like|'d\s+like)|i'd\s+like)\s+to\s+know"
    r"(?=\s+(?:if|whether|how|why|what|when|where|which|who)\b)"
    r"|(?:does|do|would)\s+(?:anyone|anybody|someone|somebody|you(?:\s+guys)?)\s+know"
    r"(?:\s+(?=if\b|whether\b))?"
    r"|(?:can|could|would)\s+(?:you|someone|anyone|somebody|anybody)\s+(?:please\s+)?"
    r"(?:tell|explain\s+to|show)\s+me(?=\s+\w)"
    r"|sorry\s+(?:if\s+this\s+(?:is\s+(?:a\s+)?(?:\w+\s+)?question|has\s+been\s+asked"
    r"(?:\s+before)?)|to\s+bother(?:\s+you)?(?:\s+all)?|for\s+the\s+(?:\w+\s+)?question)"
    r"(?:\s*,?\s+but\b)?"
    # asking for help as a sentence of its own ("can someone help?"), not "help me <verb>"
    r"|(?:can|could|would)\s+(?:someone|anyone|somebody|anybody)\s+(?:please\s+)?help"
    r"(?:\s+me)?(?:\s+(?:out|with\s+(?:this|something)))?(?=\s*[,.:;!?])"
    r"|(?:please|pls|plz)\s+help(?:\s+me)?(?=\s*[,.:;!?])"
    rf"|{_HELP_WANTED}(?=\s*[,.:;!?])"
    # a bare "please" last: "please help me, ..." goes whole (above)
    r"|(?:please|pls|plz)(?=\s+\w)"
    rf"){_END}"
)

# At the end after a sentence's punctuation, any thanks; run on without punctuation, only
# thanks that can't be the question's own words ("how do I say thanks", "a way to thank you").
_THANKS = (
    r"(?:thanks|thank\s+you|thx|ty|tia|cheers|much\s+appreciated)"
    rf"(?:\s+(?:in\s+advance|a\s+lot|so\s+much|a\s+ton|heaps|{_ALL}))*"
)
_TRAILING = re.compile(
    r"(?i)(?:"
    rf"(?:^|(?<=[,.;:!?\-–—…(]))\s*(?:{_THANKS}"
    rf"|{_HELP_ASKED}"
    r"|(?:i\s+would|i'?d)?\s*(?:really\s+)?appreciate\s+(?:any|some|the)\s+help"
    r"|(?:please|pls|plz)\s+help(?:\s+me)?)"
    r"|\s+(?:(?:thanks|thank\s+you|thx|ty)\s+in\s+advance|tia"
    rf"|{_HELP_WANTED}|(?:i\s+would|i'?d)\s+appreciate\s+(?:any|some)\s+help)"
    r")\W*$"
)

# A closing sentence about having searched already ("i tried googling but found nothing",
# "couldn't find it in the docs"): where the asker looked, not what they ask. Run on without
# punctuation it must also say the search failed ("how do i find what i looked up in the
# docs" keeps its words).
_SEARCH_VERB = r"(?:already\s+|also\s+)?(?:tried|searched|looked|googled|checked)\b"
_WHERE = (
    r"[^.?!]*?\b(?:google|googling|docs?|documentation|everywhere|online|internet|"
    r"stack\s*overflow|web|around)\b[^.?!]*?"
)
_NOT_FOUND = r"(?:i\s+)?(?:couldn'?t|can'?t|could\s+not|cannot|didn'?t)\s+find\b[^.?!]*"
_FAILED = rf"\b(?:nothing|no\s+luck|no\s+answers?|no\s+results|everywhere|{_NOT_FOUND})"
_I = r"i(?:'ve|\s+have)?\s+"
_SEARCHED = re.compile(
    r"(?i)(?:"
    rf"(?:^|(?<=[.,;!?]))\s*(?:(?:but|and|also|btw)\s+)?(?:(?:{_I})?{_SEARCH_VERB}{_WHERE}"
    rf"|{_NOT_FOUND})"
    rf"|\s+(?:(?:but|and|also|btw)\s+)?{_I}{_SEARCH_VERB}{_WHERE}{_FAILED}[^.?!]*"
    r")\W*$"
)

# Emoji, pictographs and text emoticons at the end: tone, not content.
_TRAILING_TONE = re.compile(
    r"(?:\s*(?:[\U0001F000-\U0001FAFF\u2600-\u27BF\uFE0F\u200D]+|[:;]-?[()DPp/\\|]|<3|xD))+\s*$"
)

# Laughter at the end of a question of a few words ("why does it 404 lol"); "what is lol"
# asks about it.
_LAUGHTER = re.compile(r"(?i)(?<=[\w?!.)])\s+(?:lol|lmao|rofl|haha+|hehe|xd)\W*$")


# Discord's markdown around words: `code`, **bold**, ~~strike~~, ||spoiler||. The marks go,
# the words stay ("`acks_late`" asks about acks_late). Single * and __ stay: in code they
# are the words ("a*b", "__init__").
_MARKS = re.compile(r"`{3}|`|\*\*(?=\S)(.+?)(?<=\S)\*\*|~~(.+?)~~|\|\|(.+?)\|\|")


def _unmark(m: re.Match[str]) -> str:
    return next((g for g in m.groups() if g is not None), "")


# A link in a question names a page, not what is asked; its pieces ("https", "org", "html")
# would read as names the answer must hold. A markdown link keeps its text.
_LINK = re.compile(
    r"\[([^\]]*)\]\(\s*<?(?:https?://|www\.)[^)\s]*>?\s*\)|<?(?:https?://|www\.)[^\s>]+>?"
)


def _unlink(m: re.Match[str]) -> str:
    return m.group(1) or ""


def _unshout(text: str) -> str:
    """A message typed in capitals ("HOW DO I MAKE AN OPTION REQUIRED") in lower case: every
    word would otherwise read as an acronym, a name the answer must hold."""
    letters = [ch for ch in text if ch.isalpha()]
    words = text.split()
    if (
        len(words) >= 3
        and len(letters) >= 12
        and sum(ch.isupper() for ch in letters) >= 0.9 * len(letters)
    ):
        return text.lower()
    return text


# A fenced block pasted with the question (the asker's code, a traceback): their material,
# whose names ("app.py", "RuntimeError", "line 3") no document answers about. The question
# is the prose around it; a message that is only a block stays as typed.
_FENCED = re.compile(r"```.*?(?:```|$)", re.DOTALL)


def core_question(message: str) -> str:
    """The question `message` asks: without greetings, announcements and thanks at its
    start and end, formatting marks, links and pasted blocks."""
    prose = _FENCED.sub(" ", message)
    text = _LINK.sub(_unlink, prose if any(ch.isalnum() for ch in prose) else message)
    text = _unshout(re.sub(r"[ \t]+", " ", _MARKS.sub(_unmark, text)).strip())
    text = re.sub(r"([?!])[?!]+", r"\1", text)
    while True:
        before = text
        text = _TRAILING_TONE.sub("", text)
        if len(text.split()) > 3:
            text = _LAUGHTER.sub("", text)
        text = _LEADING.sub("", text, count=1)
        text = _TRAILING.sub("", text, count=1).rstrip(" ,;:-–—")
        text = _SEARCHED.sub("", text, count=1).rstrip(" ,;:-–—")
        if text == before:
            break
    return text if any(ch.isalnum() for ch in text) else message.strip()
