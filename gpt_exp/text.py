"""Text helpers: token ids back to text the way it is written, whatever the vocabulary (below), and
numbers read from text fields (`parse_number`: data files, override values).


`tokenizers`' WordPiece decoder (bert-base-chinese) puts a space between every two tokens, so Chinese
comes back as `中 国 人 民`, and it shows the vocabulary's own entries [UNK], [SEP], [CLS], [PAD], which
are ordinary tokens there, not added special ones. Samples and summaries go through `readable_text`.
"""
from __future__ import annotations

import re
import math
from typing import Iterable

# ideographs, CJK punctuation, kana, full-width forms: a space beside one of them is a decoding artefact
_WIDE = "\u2e80-\u2fdf\u3000-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
_SPACE_NEAR_WIDE = re.compile(rf"(?<=[{_WIDE}])\s+|\s+(?=[{_WIDE}])")


def join_wide(text: str) -> str:
    """Removes the spaces next to CJK characters and full-width signs (`中 国 ， 人` -> `中国，人`)."""
    return _SPACE_NEAR_WIDE.sub("", text)


def readable_text(tokenizer, ids: Iterable[int]) -> str:
    """The text of `ids` without any special token (bos, eos, sep, pad, unk, task tokens), CJK joined.

    An [UNK] becomes a space (then dropped beside CJK): bert-base-chinese has no “ ” —, so [UNK] often stands
    for a quotation mark, which is better left out than shown as `[UNK]`.
    """
    ids = [int(i) for i in ids]
    unk = tokenizer.token_id("unk") if tokenizer.has_role("unk") else None
    special = {tokenizer.token_id(role) for role in tokenizer.special_tokens} - {unk}
    pieces, current = [], []
    for token in ids:
        if token == unk:
            pieces.append(current)
            current = []
        elif token not in special:
            current.append(token)
    pieces.append(current)
    texts = [_decode_piece(tokenizer, piece) for piece in pieces]
    return join_wide(" ".join(text for text in texts if text)).strip()


def _decode_piece(tokenizer, ids: list[int]) -> str:
    text = tokenizer.decode(ids, skip_special_tokens=True)
    if ids and (tokenizer.backend.id_to_token(ids[0]) or "").startswith("##"):
        text = text.removeprefix("##")  # WordPiece keeps the marker of a continuation piece that comes first
    return text


def parse_number(text) -> float | None:
    """The finite number `text` spells ("2.5", "1e-3", " 4 "), else None (words, "nan", "inf", None)."""
    try:
        number = float(text)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
