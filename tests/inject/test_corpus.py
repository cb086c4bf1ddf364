"""Istio's own injection cases: our decisions against Istio's (see corpus.py for what is
compared). Known differences are xfail with their reason; the score is printed."""

from __future__ import annotations

import pytest

from controlplane.inject import InjectionError, inject_documents
from tests.inject.corpus import CORPUS, Case, all_cases, decisions, load

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"Istio's corpus is not at {CORPUS}")

CASES = all_cases() if CORPUS.is_dir() else []


def _compare(case: Case) -> list[str]:
    """Differences between Istio's decisions and ours ([] when they agree)."""
    documents = load(case.source)
    if case.error:
        try:
            inject_documents(documents, case.settings)
        except InjectionError as error:
            return [] if case.error in str(error) else [f"error does not name {case.error}: {error}"]
        return [f"Istio refuses this input ({case.error}); we injected it"]
    ours = decisions(inject_documents(documents, case.settings))
    istio = decisions(load(case.expected))
    if len(ours) != len(istio):
        return [f"{len(ours)} documents, Istio {len(istio)}"]
    out = []
    for n, (mine, theirs) in enumerate(zip(ours, istio, strict=True)):
        for key in sorted(set(mine) | set(theirs)):
            if mine.get(key) != theirs.get(key):
                out.append(f"document {n} {key}: ours {mine.get(key)!r}, Istio {theirs.get(key)!r}")
    return out


@pytest.mark.parametrize("case", CASES, ids=[f"{c.source}->{c.expected or 'error'}" for c in CASES])
def test_istio_injection_case(case: Case) -> None:
    differences = _compare(case)
    if case.xfail:
        if differences:
            pytest.xfail(case.xfail)
        pytest.fail(f"listed as a known difference ({case.xfail}) but now matches: remove it")
    assert not differences, "\n".join(differences)


def test_corpus_score(capsys: pytest.CaptureFixture[str]) -> None:
    results = [(c, _compare(c)) for c in CASES]
    matched = sum(1 for _, d in results if not d)
    explained = sum(1 for c, d in results if d and c.xfail)
    with capsys.disabled():
        print(f"\ninjection corpus: {matched}/{len(CASES)} of Istio's decisions matched; "
              f"{explained} known differences (xfail with reason)")
    assert matched + explained == len(CASES)
    assert len(CASES) > 80
