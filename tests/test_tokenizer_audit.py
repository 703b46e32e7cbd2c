"""The judge's byte truth and the bug-class attribution, on real tiny SentencePiece models and the byte tokenizer."""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tokenizer_audit_kit import SPACE_MARK, VAL_TEXTS, build_models, save_table

from tools.verify.tokenizer.audit import audit_tokenizer
from tools.verify.tokenizer.byte_table import ByteTable, TableError, compare_table, contract_table, load_byte_table
from tools.verify.tokenizer.byte_truth import BYTE, TokenizerError, load_tokenizer

TEXTS = [t.encode("utf-8") for t in VAL_TEXTS]


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return build_models(tmp_path_factory)


def classes(comparison) -> dict[str, tuple[int, int, int]]:
    return {k.id: (k.token_ids, k.targets, k.byte_error) for k in comparison.classes}


def table_with(audit, change) -> ByteTable:
    values = audit.truth.byte_counts.copy()
    change(values, audit.truth)
    return ByteTable(values, audit.truth.add_dummy_prefix, "planted")


def target_count(audit, mask) -> int:
    return int(audit.stats.target_counts[mask].sum())


# --- the truth ----------------------------------------------------------------------------------------------------


def test_lossless_model_round_trips_and_the_contract_table_is_exact(models):
    audit = audit_tokenizer(models["lossless"], TEXTS, names=["a", "b", "c"])
    truth, stats = audit.truth, audit.stats
    assert audit.roundtrip_ok and stats.first_mismatch is None
    assert stats.original_bytes == stats.decoded_bytes == sum(map(len, TEXTS))
    assert stats.tokens == len(TEXTS) + sum(len(ids) for ids in truth.encode_texts(TEXTS))
    assert stats.targets == stats.tokens - 1
    # The fixture is only meaningful if unseen characters really went through byte fallback, partial UTF-8 included.
    partial_bytes = (truth.kinds == BYTE) & ~truth.valid_utf8_alone
    assert target_count(audit, partial_bytes) > 0
    comparison = audit.compare(contract_table(truth))
    assert comparison.error_bytes == 0 and comparison.classes == () and comparison.wrong_ids == 0


def test_judge_decoding_equals_sentencepiece_decoding(models):
    import sentencepiece as spm

    truth = load_tokenizer(models["lossless"])
    processor = spm.SentencePieceProcessor(model_file=str(models["lossless"]))
    for text in VAL_TEXTS:
        ids = processor.encode(text)
        assert b"".join(truth.piece_bytes[i] for i in ids) == processor.decode(ids).encode("utf-8") == text.encode()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters=SPACE_MARK), max_size=60),
                min_size=1, max_size=4))
def test_any_text_round_trips_and_counts_exactly_with_the_lossless_model(models, texts):
    audit = audit_tokenizer(models["lossless"], texts, byte_table=contract_table(load_tokenizer(models["lossless"])))
    assert audit.roundtrip_ok
    assert audit.table is not None and audit.table.error_bytes == 0
    assert audit.table.true_bytes == sum(len(t.encode("utf-8")) for t in texts)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.text(st.sampled_from(list("ab thekingéж😀\n  ")), max_size=80), min_size=1, max_size=4))
def test_split_encoding_gives_the_same_ids_as_whole_documents(models, texts):
    from unittest import mock

    import tools.verify.tokenizer.byte_truth as byte_truth

    truth = load_tokenizer(models["plain"])
    assert truth.split_safe
    raw = [t.encode("utf-8") for t in texts]
    with mock.patch.object(byte_truth, "ENCODE_CHUNK_CHARS", 3):  # cut at nearly every space
        assert truth.encode_texts(raw) == truth._processor.encode(texts)


def test_split_encoding_only_where_it_is_provably_safe(models):
    assert load_tokenizer(models["plain"]).split_safe
    for name in ("lossless", "lossy", "dummy", "casefold", "nospace"):  # ▁▁ pieces, normalizers, dummy ▁, no ▁
        assert not load_tokenizer(models[name]).split_safe, name
    # Why the guard exists: with a ▁▁▁▁ piece, cutting before spaces changes the ids; the audit then encodes whole.
    from unittest import mock

    import tools.verify.tokenizer.byte_truth as byte_truth

    truth = load_tokenizer(models["lossless"])
    text = "the king    and thee"
    whole = truth._processor.encode(text)
    assert whole != [i for part in byte_truth.split_before_spaces(text, 1) for i in truth._processor.encode(part)]
    with mock.patch.object(byte_truth, "ENCODE_CHUNK_CHARS", 1):
        assert truth.encode_texts([text.encode()]) == [whole]


def test_lossy_model_fails_the_round_trip_with_document_offset_and_tokens(models):
    texts = [b"the king and thee.", b"go  well"]  # the double space collapses (and so would a trailing newline)
    audit = audit_tokenizer(models["lossy"], texts, names=["first.txt", "second.txt"])
    assert not audit.roundtrip_ok
    mismatch = audit.stats.first_mismatch
    assert mismatch.document == "second.txt" and mismatch.offset == 3
    assert mismatch.expected.startswith(b" well") and mismatch.decoded.startswith(b"well")
    assert any(piece.startswith(SPACE_MARK) for _, _, piece in mismatch.tokens)
    assert audit.stats.mismatched_documents == 1
    # A contract-correct table then counts the decoded text, one byte short of the original.
    comparison = audit.compare(contract_table(audit.truth))
    assert classes(comparison) == {"lossy_decoding": (0, 0, -1)}


def test_nfkc_normalization_is_lossy(models):
    audit = audit_tokenizer(models["lossy"], ["the ﬁne king".encode()])
    assert audit.stats.first_mismatch.offset == 4  # the ligature ﬁ became "fi"


def test_case_folding_tokenizer_fails_the_round_trip(models):
    audit = audit_tokenizer(models["casefold"], [b"the King"])
    assert not audit.roundtrip_ok
    assert audit.stats.first_mismatch.offset == 4 and audit.stats.first_mismatch.decoded.startswith(b"k")


def test_unknown_tokens_are_lossy_and_counting_them_is_named(models):
    audit = audit_tokenizer(models["no_fallback"], ["the ж king".encode()])
    assert not audit.roundtrip_ok and audit.stats.first_mismatch.offset == 4
    unk = audit.truth._processor.unk_id()
    comparison = audit.compare(table_with(audit, lambda v, t: v.__setitem__(unk, 3)))
    found = classes(comparison)
    assert found["special_counted"] == (1, 1, 3)
    assert found["lossy_decoding"] == (0, 0, -2)  # ж is 2 bytes the tokens do not carry


def test_non_utf8_document_is_reported_by_name(models):
    with pytest.raises(TokenizerError, match=r"bad\.txt: not valid UTF-8 at byte 3"):
        audit_tokenizer(models["lossless"], [b"ok", b"abc\xff"], names=["good.txt", "bad.txt"])


def test_byte_tokenizer_round_trips_any_bytes(models):
    audit = audit_tokenizer(models["byte"], [b"\xff\xfe raw", "é".encode()])
    assert audit.roundtrip_ok
    assert audit.compare(contract_table(audit.truth)).error_bytes == 0


# --- bug classes ----------------------------------------------------------------------------------------------------


def test_leading_space_counted_twice(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    leading = audit.truth.leading_space
    comparison = audit.compare(table_with(audit, lambda v, t: v.__iadd__(t.leading_space)))
    targets = target_count(audit, leading)
    assert targets > 0
    assert classes(comparison) == {"leading_space_double": (int(leading.sum()), targets, targets)}
    assert comparison.error_bytes == targets


def test_byte_fallback_counted_as_replacement_character(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    is_byte = audit.truth.kinds == BYTE
    comparison = audit.compare(table_with(audit, lambda v, t: v.__setitem__(t.kinds == BYTE, 3)))
    targets = target_count(audit, is_byte)
    assert classes(comparison) == {"byte_as_replacement_char": (256, targets, 2 * targets)}


def test_partial_utf8_pieces_counted_by_decoding_alone(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)

    def decode_alone(values, truth):  # len(piece.decode("utf-8", "ignore")): 0 for a lone continuation byte
        for i in np.flatnonzero(truth.kinds == BYTE):
            values[i] = len(truth.piece_bytes[i].decode("utf-8", "ignore"))

    comparison = audit.compare(table_with(audit, decode_alone))
    partial = (audit.truth.kinds == BYTE) & ~audit.truth.valid_utf8_alone
    targets = target_count(audit, partial)
    assert classes(comparison) == {"partial_utf8": (128, targets, -targets)}


def test_space_mark_counted_as_three_utf8_bytes(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    truth = audit.truth
    whitespace_only = np.array([len(p) >= 2 and set(p) == {SPACE_MARK} for p in truth.pieces])
    assert whitespace_only.any(), "the fixture model should have learned a whitespace-only piece such as ▁▁"
    assert any("whitespace-only" in f for f in audit.findings)

    def public_rule(values, t):  # strip the first ▁ (counted as one space), encode the rest as UTF-8
        for i, piece in enumerate(t.pieces):
            if t.space_marks[i] and piece.startswith(SPACE_MARK):
                values[i] = 1 + len(piece[1:].encode("utf-8"))

    comparison = audit.compare(table_with(audit, public_rule))
    extra = (truth.space_marks - 1) * truth.leading_space
    affected = extra > 0
    assert classes(comparison) == {
        "space_mark_as_utf8": (int(affected.sum()), target_count(audit, affected),
                               int(2 * audit.stats.target_counts @ extra))
    }
    assert target_count(audit, affected) > 0


def test_vocabulary_without_standalone_space(models):
    audit = audit_tokenizer(models["nospace"], TEXTS)
    assert not audit.truth.has_standalone_space
    assert any("no standalone ▁" in f for f in audit.findings)
    assert audit.roundtrip_ok  # the spaces are there, as three byte tokens each
    triples = audit.stats.space_triples
    assert triples > 0
    comparison = audit.compare(contract_table(audit.truth))  # even the contract's per-token rule cannot be right
    assert classes(comparison) == {"space_as_byte_tokens": (3, 3 * triples, 2 * triples)}
    assert comparison.error_bytes == 2 * triples


def test_control_token_counted_as_a_byte(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    comparison = audit.compare(table_with(audit, lambda v, t: v.__setitem__(t.bos_id, 1)))
    assert classes(comparison) == {"special_counted": (1, len(TEXTS) - 1, len(TEXTS) - 1)}  # every BOS but the first


def test_characters_counted_instead_of_bytes(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)

    def characters(values, truth):
        for i in np.flatnonzero(truth.kinds != BYTE):
            values[i] = len(truth.piece_bytes[i].decode("utf-8"))

    found = classes(audit.compare(table_with(audit, characters)))
    assert set(found) == {"characters_counted"} and found["characters_counted"][2] < 0


def test_dummy_prefix_counted_unless_the_table_frees_it(models):
    audit = audit_tokenizer(models["dummy"], TEXTS)
    assert audit.roundtrip_ok and audit.stats.dummy_prefix_drops == len(TEXTS)
    right = ByteTable(audit.truth.byte_counts, True, "frees it")
    assert audit.compare(right).error_bytes == 0
    wrong = audit.compare(ByteTable(audit.truth.byte_counts, False, "counts it"))
    assert classes(wrong)["dummy_prefix_counted"][1:] == (len(TEXTS), len(TEXTS))


def test_leading_space_made_free_without_a_dummy_prefix(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)  # VAL_TEXTS[1] really starts with a space
    comparison = audit.compare(ByteTable(audit.truth.byte_counts, True, "frees it"))
    assert classes(comparison) == {"leading_space_wrongly_free": (1, 1, -1)}


def test_byte_tokenizer_with_replacement_character_rule(models):
    text = "naïve ж 😀".encode()
    audit = audit_tokenizer(models["byte"], [text])
    values = audit.truth.byte_counts.copy()
    values[128:256] = 3  # len(bytes([b]).decode("utf-8", "replace").encode())
    found = classes(audit.compare(ByteTable(values, None, "fffd")))
    high = sum(b >= 128 for b in text)
    assert found == {"byte_as_replacement_char": (128, high, 2 * high)}


def test_table_bytes_and_bpb_effect(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    comparison = audit.compare(table_with(audit, lambda v, t: v.__iadd__(t.leading_space)))
    scale = comparison.table_bytes / comparison.true_bytes
    effect = comparison.bpb_effect(1.2)
    assert effect["true_bpb"] == pytest.approx(1.2 * scale) and effect["bpb_difference"] > 0
    assert comparison.bpb_effect(None) == {"relative": pytest.approx(scale - 1)}


def test_compare_table_checks_its_own_arithmetic(models):
    audit = audit_tokenizer(models["lossless"], TEXTS)
    audit.stats.decoded_bytes += 1  # a judge bug would show as disagreeing counts, never as a silent pass
    with pytest.raises(AssertionError):
        compare_table(audit.truth, audit.stats, contract_table(audit.truth))


# --- reading tables as hostile data ------------------------------------------------------------------------------


def test_table_file_is_validated(tmp_path, models):
    good = save_table(tmp_path / "good.npy", np.ones(257, np.int64), flag=False)
    assert load_byte_table(good, 257).leading_space_after_bos_is_free is False
    cases = {
        "floats.npy": (np.ones(257), "dtype float64"),
        "short.npy": (np.ones(10, np.int64), r"shape \(10,\)"),
        "negative.npy": (np.array([-1] + [1] * 256), "id 0 has -1 bytes"),
        "objects.npy": (np.array([{"a": 1}] * 257, dtype=object), "not a readable .npy"),
    }
    for name, (values, message) in cases.items():
        np.save(tmp_path / name, values, allow_pickle=True)
        with pytest.raises(TableError, match=message):
            load_byte_table(tmp_path / name, 257)
    os.symlink(good, tmp_path / "link.npy")
    with pytest.raises(TableError, match="symlinks are refused"):
        load_byte_table(tmp_path / "link.npy", 257)
    (tmp_path / "badflag.npy").write_bytes(good.read_bytes())
    (tmp_path / "badflag.json").write_text('{"leading_space_after_bos_is_free": "yes"}')
    with pytest.raises(TableError, match="badflag.json"):
        load_byte_table(tmp_path / "badflag.npy", 257)


def test_unreadable_tokenizers_are_named(tmp_path):
    (tmp_path / "junk.model").write_bytes(b"not a model")
    with pytest.raises(TokenizerError, match="junk.model: not a SentencePiece model"):
        load_tokenizer(tmp_path / "junk.model")
    (tmp_path / "tokenizer.json").write_text('{"type": "bpe"}')
    with pytest.raises(TokenizerError, match="unsupported tokenizer.json"):
        load_tokenizer(tmp_path / "tokenizer.json")


def test_dummy_prefix_on_a_vocabulary_without_standalone_space(models, tmp_path):
    from test_tokenizer_audit_kit import remove_space_piece

    model = remove_space_piece(models["dummy"], tmp_path / "dummy_nospace.model")
    audit = audit_tokenizer(model, TEXTS)
    # The dummy ▁ itself is byte-encoded: three tokens that stand for nothing at each document start.
    assert audit.roundtrip_ok and audit.stats.dummy_prefix_drops == len(TEXTS)
    comparison = audit.compare(contract_table(audit.truth))
    found = classes(comparison)
    # A dummy ▁ that merged into a piece ("▁the") is freed by the flag; one left alone as bytes is not.
    byte_first = sum(audit.truth.kinds[ids[0]] == BYTE for ids in audit.truth.encode_texts(TEXTS))
    assert byte_first >= 1  # VAL_TEXTS[1] starts with a space: "▁▁thou" -> <0xE2><0x96><0x81> "▁thou"
    assert found["dummy_prefix_counted"][2] == byte_first
    assert found["space_as_byte_tokens"][2] == 2 * audit.stats.space_triples
    assert comparison.error_bytes == 2 * audit.stats.space_triples + byte_first


def test_wrong_entries_that_validation_never_uses_warn_but_do_not_fail(models):
    from tools.verify.tokenizer.audit import table_check

    audit = audit_tokenizer(models["lossless"], TEXTS)
    unused = int(np.flatnonzero((audit.truth.kinds == BYTE) & (audit.stats.target_counts == 0))[0])
    comparison = audit.compare(table_with(audit, lambda v, t: v.__setitem__(unused, 3)))
    assert comparison.error_bytes == 0 and comparison.wrong_ids == 1
    assert classes(comparison) == {"byte_as_replacement_char": (1, 0, 0)}
    check = table_check(audit, comparison)
    assert check.status == "warn" and "wrong for 1 id(s)" in check.message
    assert table_check(audit, audit.compare(contract_table(audit.truth))).status == "pass"
