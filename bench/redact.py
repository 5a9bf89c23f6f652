"""Redaction benchmark: exashard ``Redactor`` vs Presidio vs scrubadub, side by side in one run.

Not a test (tests never import it). Peers live in their own venv::

    python3 -m venv .bench-venv-redact
    .bench-venv-redact/bin/pip install presidio-analyzer scrubadub faker pyarrow zstandard cryptography click xxhash fsspec
    .bench-venv-redact/bin/pip install -e . --no-deps
    .bench-venv-redact/bin/python bench/redact.py            # 15 rounds, ~3 min; writes bench/results/redact.json

Corpora: the frozen labelled corpus of ``tests/_pii_corpus.py`` (default seed, 3000 texts) for
texts/s and per-entity precision/recall/F2, a held-out corpus (another seed, accuracy only) and
100k low-PII captions (~1% with one PII value) for MB/s through the batch API. Everything runs in
one process on one core; contenders take turns for ``--runs`` rounds, each calling its function for
at least 0.3 s, and a timing is the median over rounds of each round's mean call (bests: the
fastest call). Phone plans (kept by layout across calls) are reset before every timed call to what
the held-out corpus leaves; a "cold plans" row starts from none. The
corpora and the peers are built first and then frozen out of the garbage collector (``gc.freeze``),
so that Faker's and spaCy's many objects do not make every contender pay for collections it did not
cause (without it, allocation-heavy paths such as ``find_batch`` lose half their speed here).

Presidio: ``AnalyzerEngine`` with the no-op NLP engine (no spaCy model) and only the pattern
recognizers for our entities (email, phone, card, SSN, IP, IBAN, MAC, crypto); tldextract is told to
use its bundled suffix list (no network). scrubadub: its email, phone, credit-card and SSN detectors.
Neither has URL_CREDENTIALS or SECRET; those rows compare nothing and are left out of the ratios.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from _pii_corpus import SEED, fingerprint, generate, low_pii_captions, score  # noqa: E402

from exashard.privacy.pii_detect import clear_plans  # noqa: E402
from exashard.privacy.redact import Redactor  # noqa: E402

PRESIDIO_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IP_ADDRESS", "IBAN_CODE", "MAC_ADDRESS", "CRYPTO"]
SCRUBADUB_TYPES = {"email": "EMAIL_ADDRESS", "phone": "PHONE_NUMBER", "credit_card": "CREDIT_CARD", "social_security_number": "US_SSN"}


@dataclass(frozen=True, slots=True)
class Hit:
    entity: str
    start: int
    end: int


class PresidioAdapter:
    def __init__(self) -> None:
        import tldextract.tldextract as tld
        from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
        from presidio_analyzer.nlp_engine import NoOpNlpEngine
        from presidio_analyzer.predefined_recognizers import (
            CreditCardRecognizer,
            CryptoRecognizer,
            EmailRecognizer,
            IbanRecognizer,
            IpRecognizer,
            MacAddressRecognizer,
            PhoneRecognizer,
            UsSsnRecognizer,
        )

        tld.TLD_EXTRACTOR = tld.TLDExtract(suffix_list_urls=(), cache_dir=None)  # offline: bundled list
        nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "none"}])
        registry = RecognizerRegistry(supported_languages=["en"])
        for rec in (EmailRecognizer, PhoneRecognizer, CreditCardRecognizer, UsSsnRecognizer, IpRecognizer, IbanRecognizer,
                    MacAddressRecognizer, CryptoRecognizer):
            registry.add_recognizer(rec())
        self.engine = AnalyzerEngine(registry=registry, nlp_engine=nlp, supported_languages=["en"])

    def find(self, text: str) -> list[Hit]:
        return [Hit(r.entity_type, r.start, r.end) for r in self.engine.analyze(text, language="en", entities=PRESIDIO_ENTITIES)]


class ScrubadubAdapter:
    def __init__(self) -> None:
        import scrubadub

        self.scrubber = scrubadub.Scrubber(detector_list=[])
        for name in SCRUBADUB_TYPES:
            self.scrubber.add_detector(name)

    def find(self, text: str) -> list[Hit]:
        out = []
        for filth in self.scrubber.iter_filth(text):
            for f in getattr(filth, "filths", None) or [filth]:  # MergedFilth holds the originals
                if f.type in SCRUBADUB_TYPES:
                    out.append(Hit(SCRUBADUB_TYPES[f.type], f.beg, f.end))
        return out


class PerText:
    """Score the per-text path (``find`` one text at a time), not ``find_batch``."""

    def __init__(self, redactor: Any) -> None:
        self.find = redactor.find


def interleaved(fns: dict[str, Callable[[], Any]], runs: int, setups: dict[str, Callable[[], Any]] | None = None,
                min_seconds: float = 0.3) -> dict[str, dict[str, float]]:
    """Median and best seconds per call, the functions taking turns round after round, so that a
    noisy neighbour slows every contender alike instead of whichever ran at the time. In a round a
    function is called until ``min_seconds`` have passed (at least once) and the round counts the
    mean of those calls: a 30 ms call timed once is at the mercy of one scheduler hiccup, and a mean
    takes in the noise as a peer's one long call does (a median of short calls would drop it and
    flatter the faster contender). ``setups[name]`` runs before every call of ``name``, untimed."""
    setups = setups or {}
    times: dict[str, list[float]] = {name: [] for name in fns}
    best: dict[str, float] = {}
    for _ in range(runs):
        for name, fn in fns.items():
            calls: list[float] = []
            while not calls or sum(calls) < min_seconds:
                if name in setups:
                    setups[name]()
                gc.collect()
                t = time.perf_counter()
                fn()
                calls.append(time.perf_counter() - t)
            times[name].append(sum(calls) / len(calls))
            best[name] = min(best.get(name, float("inf")), *calls)
    return {name: {"median": statistics.median(ts), "best": best[name]} for name, ts in times.items()}


def micro_f2(scores: dict[str, dict[str, float]], entities: Sequence[str]) -> float:
    tp = sum(scores[e]["tp"] for e in entities if e in scores)
    fp = sum(scores[e]["fp"] for e in entities if e in scores)
    fn = sum(scores[e]["fn"] for e in entities if e in scores)
    p, r = (tp / (tp + fp) if tp + fp else 1.0), (tp / (tp + fn) if tp + fn else 1.0)
    return 5 * p * r / (4 * p + r) if p + r else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15, help="rounds (the median round counts)")
    ap.add_argument("--texts", type=int, default=3000, help="labelled corpus size")
    ap.add_argument("--captions", type=int, default=100_000)
    ap.add_argument("--peer-captions", type=int, default=2000, help="captions given to the peers (they are slow)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "redact.json"))
    args = ap.parse_args()

    corpus = generate(args.texts)
    heldout = generate(args.texts, seed=SEED + 1)
    texts = [s.text for s in corpus]
    captions = low_pii_captions(args.captions)
    import pyarrow as pa

    captions_arrow = pa.array(captions)
    corpus_mb = sum(len(t.encode()) for t in texts) / 1e6
    captions_mb = sum(len(t.encode()) for t in captions) / 1e6
    ex, ex_arrow = Redactor(), Redactor(prefilter="arrow")
    contenders: dict[str, tuple[Any, Callable[[], Any]]] = {
        "exashard batch": (ex, lambda: ex.find_batch(texts)),
        "exashard batch (cold plans)": (ex, lambda: ex.find_batch(texts)),
        "exashard batch (arrow prefilter)": (ex_arrow, lambda: ex_arrow.find_batch(texts)),
        "exashard per-text": (PerText(ex), lambda: [ex.find(t) for t in texts]),
    }
    # The phone detector keeps plans by digit layout across calls (pii_detect._phone_plan), as a long
    # ingest would have them. Before every timed call they are reset to what the held-out corpus
    # (another seed) leaves, never to what the measured texts left; "cold plans" starts empty.
    heldout_texts = [c.text for c in heldout]

    def plans_from_heldout() -> None:
        clear_plans()
        ex.find_batch(heldout_texts)

    setups = {name: plans_from_heldout for name in contenders}
    setups["exashard batch (cold plans)"] = clear_plans
    peers: dict[str, Any] = {}
    for name, cls in (("presidio", PresidioAdapter), ("scrubadub", ScrubadubAdapter)):
        try:
            peers[name] = cls()
        except ImportError as e:
            print(f"skipping {name}: {e}", file=sys.stderr)
    for name, peer in peers.items():
        peer.find(texts[0])  # warm-up (lazy imports, regex compilation)
        contenders[name] = (peer, lambda p=peer: [p.find(t) for t in texts])
    gc.collect()
    gc.freeze()  # after every import and construction: spaCy's object graph included

    result: dict[str, Any] = {
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpu": platform.processor() or None,
                    "cpus_visible": os.cpu_count(), "note": "single process, one core"},
        "corpus": {"texts": len(texts), "mb": round(corpus_mb, 4), "seed": SEED, "fingerprint": fingerprint(corpus),
                   "heldout_seed": SEED + 1},
        "captions": {"texts": len(captions), "mb": round(captions_mb, 3)},
        "runs": args.runs,
        "labelled": {},
        "captions_throughput": {},
    }
    print(f"labelled corpus: {len(texts)} texts, {corpus_mb:.2f} MB (fingerprint {fingerprint(corpus)}); medians of {args.runs} runs")
    print(f"{'contender':34s} {'texts/s':>10s} {'MB/s':>8s} {'best texts/s':>13s}")
    timings = interleaved({name: fn for name, (_, fn) in contenders.items()}, args.runs, setups)
    for name, (obj, _) in contenders.items():
        secs, best = timings[name]["median"], timings[name]["best"]
        result["labelled"][name] = {"seconds": secs, "texts_per_s": len(texts) / secs, "mb_per_s": corpus_mb / secs,
                                    "best_texts_per_s": len(texts) / best, "scores": score(obj, corpus),
                                    "heldout_scores": score(obj, heldout)}
        print(f"{name:34s} {len(texts) / secs:10.0f} {corpus_mb / secs:8.2f} {len(texts) / best:13.0f}")

    print("\nper entity: precision / recall / F2 (frozen corpus; held-out F2 in brackets)")
    entities = sorted({e for r in result["labelled"].values() for e in r["scores"]})
    names = list(result["labelled"])
    print(f"{'entity':16s} " + " ".join(f"{n[:24]:>26s}" for n in names))
    for e in entities:
        cells = []
        for n in names:
            s, h = result["labelled"][n]["scores"].get(e), result["labelled"][n]["heldout_scores"].get(e)
            cells.append(f"{s['precision']:.3f}/{s['recall']:.3f}/{s['f2']:.3f} [{h['f2']:.2f}]" if s and h else "-")
        print(f"{e:16s} " + " ".join(f"{c:>26s}" for c in cells))

    base = result["labelled"]["exashard batch"]
    ratios: dict[str, Any] = {}
    for peer in peers:
        got = result["labelled"][peer]
        shared = [e for e in PRESIDIO_ENTITIES if e in got["scores"] and got["scores"][e]["tp"] + got["scores"][e]["fn"] > 0]
        if peer == "scrubadub":
            shared = list(SCRUBADUB_TYPES.values())
        ratios[peer] = {
            "texts_per_s_ratio": base["texts_per_s"] / got["texts_per_s"],
            "best_texts_per_s_ratio": base["best_texts_per_s"] / got["best_texts_per_s"],
            "cold_plans_texts_per_s_ratio": result["labelled"]["exashard batch (cold plans)"]["texts_per_s"] / got["texts_per_s"],
            "per_text_ratio": result["labelled"]["exashard per-text"]["texts_per_s"] / got["texts_per_s"],
            "shared_entities": shared,
            "f2_micro_exashard": micro_f2(base["scores"], shared),
            "f2_micro_peer": micro_f2(got["scores"], shared),
            "f2_per_entity_exashard_ge_peer": {e: base["scores"][e]["f2"] >= got["scores"].get(e, {"f2": 0})["f2"] for e in shared},
        }
        r = ratios[peer]
        print(f"\nvs {peer}: {r['texts_per_s_ratio']:.0f}x texts/s (batch; best-of {r['best_texts_per_s_ratio']:.0f}x, "
              f"cold plans {r['cold_plans_texts_per_s_ratio']:.0f}x), "
              f"{r['per_text_ratio']:.0f}x (per-text); "
              f"micro-F2 on {len(shared)} shared entities {r['f2_micro_exashard']:.3f} vs {r['f2_micro_peer']:.3f}")
    result["ratios"] = ratios

    print(f"\nlow-PII captions: {len(captions)} texts, {captions_mb:.1f} MB")
    caption_runs: dict[str, tuple[Callable[[], Any], int, float]] = {
        "exashard redact_batch(list)": (lambda: ex.redact_batch(captions), len(captions), captions_mb),
        "exashard redact_batch(arrow array)": (lambda: ex.redact_batch(captions_arrow), len(captions), captions_mb),
        "exashard redact_batch(list), arrow prefilter": (lambda: ex_arrow.redact_batch(captions), len(captions), captions_mb),
        "exashard redact_batch(arrow array), arrow prefilter": (lambda: ex_arrow.redact_batch(captions_arrow), len(captions), captions_mb),
        "exashard find_batch(list)": (lambda: ex.find_batch(captions), len(captions), captions_mb),
        "exashard redact per text": (lambda: [ex.redact(t) for t in captions], len(captions), captions_mb),
    }
    few = captions[: args.peer_captions]
    few_mb = sum(len(t.encode()) for t in few) / 1e6
    for name, peer in peers.items():
        caption_runs[f"{name} (first {len(few)})"] = (lambda p=peer: [p.find(t) for t in few], len(few), few_mb)
    timings = interleaved({name: fn for name, (fn, _, _) in caption_runs.items()}, args.runs)
    for name, (_, n, mb) in caption_runs.items():
        secs, best = timings[name]["median"], timings[name]["best"]
        result["captions_throughput"][name] = {"seconds": secs, "texts_per_s": n / secs, "mb_per_s": mb / secs,
                                               "best_mb_per_s": mb / best}
        print(f"{name:52s} {n / secs:10.0f} texts/s {mb / secs:8.1f} MB/s (best {mb / best:.1f})")

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
