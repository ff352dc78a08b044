"""The evaluator: log parsing and a small prequential run with planted structure."""

from __future__ import annotations

from pathlib import Path

from benchmarks.evaluate import evaluate, read_log, synthetic_log


def test_reads_recbole_style_tsv_and_plain_csv(tmp_path: Path) -> None:
    tsv = tmp_path / "log.inter"
    tsv.write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
        "1\t10\t5\t881250949\n2\t20\t3\t881250900\n1\t30\t4\t881250960\n"
    )
    rows = read_log(tsv, min_value=4)
    assert [(r.user, r.item, r.ts, r.value) for r in rows] == [
        ("1", "10", 881250949000, 5.0),
        ("1", "30", 881250960000, 4.0),
    ]
    csv_file = tmp_path / "log.csv"
    csv_file.write_text(
        "user,item,timestamp,type\nu,a,1700000000000,view\nu,b,1700000000001,purchase\n"
    )
    assert [(r.item, r.kind) for r in read_log(csv_file)] == [
        ("a", "product_viewed"),
        ("b", "order_completed"),
    ]


def test_models_recover_the_planted_structure_better_than_popularity() -> None:
    results = evaluate(synthetic_log(6000, users=300, items=120), every=3, progress=False)
    expected = {"hr_at_10", "ndcg_at_10", "coverage", "learn_us_p50", "rank_us_p50"}
    assert all(set(metrics) == expected for metrics in results.values())
    assert all(0.0 <= m["hr_at_10"] <= 1.0 for m in results.values())
    # Shoppers follow each item's planted partner: co-occurrence must see it.
    assert results["cooccurrence"]["hr_at_10"] > 1.5 * results["baseline_popularity"]["hr_at_10"]
    assert results["hybrid"]["hr_at_10"] > results["baseline_popularity"]["hr_at_10"]
