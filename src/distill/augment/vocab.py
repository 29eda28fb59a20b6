"""Which vocabulary entries of a tokenizer are whole words (not subword pieces, not special
tokens), for the two methods that replace a word by another entry: neighbours and mlm."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

# A vocabulary whose word-initial entries carry a marker: SentencePiece ("▁the") and
# byte-level BPE ("Ġthe"). A marker found on at least this share of the entries is the scheme.
_MARKERS = ("▁", "Ġ")
_MARKER_SHARE = 0.1


def whole_words(tokenizer: PreTrainedTokenizerBase) -> dict[int, str]:
    """Vocabulary id -> the word it spells, for entries that are a whole word by themselves.

    - WordPiece (BERT): every entry not starting with "##" (a continuation piece).
    - SentencePiece / byte-level BPE: only entries starting with the word-start marker
      ("▁" / "Ġ"), the marker removed; unmarked entries only continue a word.
    Special tokens are never words. Callers filter further (neighbours: alphabetic words only;
    mlm: letters or digits only).
    """
    vocab = tokenizer.get_vocab()
    special = set(tokenizer.all_special_tokens)
    counts = {marker: sum(token.startswith(marker) for token in vocab) for marker in _MARKERS}
    marker = next((m for m in _MARKERS if counts[m] >= _MARKER_SHARE * len(vocab)), None)
    words = {}
    for token, index in vocab.items():
        if token in special:
            continue
        if marker is None:
            word = "" if token.startswith("##") else token
        elif not token.startswith(marker):
            continue
        elif marker == "Ġ" and not token.isascii():
            # Byte-level BPE spells non-ASCII text as byte characters ("cafÃ©"); decode it.
            word = tokenizer.convert_tokens_to_string([token]).strip()
        else:
            word = token[len(marker) :]
        if word:
            words[index] = word
    return words


def lowercases(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer lowercases its input (then "Film" is the entry "film")."""
    flag = getattr(tokenizer, "do_lower_case", None)
    if isinstance(flag, bool):
        return flag
    # No flag (most non-WordPiece tokenizers): a lowercasing one reads both spellings alike.
    return tokenizer.tokenize("Hello World") == tokenizer.tokenize("hello world")
