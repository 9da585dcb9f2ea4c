"""Continual-learning report pieces: final-stage table (seeds averaged), per-stage table, headline verdicts."""
import numpy as np
import pandas as pd
import pytest

from suite.continual import sequence_metrics
from suite.report.continual import continual_accuracy, continual_general, continual_table, headline_lines


def _rows():
    rows = [{"method": "supervised", "loss": 2.2}]
    rise = {"seq-ft": 3.0, "replay": 1.0, "gere": 0.2}
    for method, r in rise.items():
        for seed in (0, 1):
            for k in (1, 2):
                rows.append({"method": method, "config.train.seed": seed, "continual.stage": k,
                             "continual.n_stages": 2, "continual.task": f"syn-{k}",
                             "continual.general_loss": 2.2 + r * k / 2 + 0.01 * seed,
                             "continual.general_loss_base": 2.2, "continual.general_loss_nobos": 2.25,
                             "continual.general_loss_nobos_base": 2.21, "continual.ap": 0.5 + 0.1 * seed,
                             "continual.forgetting": 1.0, "continual.f1": 0.4, f"continual.accuracy.syn-{k}": 1.0,
                             "method_params.weight": 100.0 if method == "gere" else np.nan, "continual.lora": 0})
    return pd.DataFrame(rows)


def test_final_table_averages_seeds_and_leads_with_the_base():
    shown, raw, caption = continual_table(_rows(), {})
    assert list(shown["method"]) == ["base model (before task 1)", "seq-ft", "replay", "gere w=100"]
    gere = raw[raw["variant"] == "gere w=100"].iloc[0]
    assert gere["continual.general_loss.mean"] == pytest.approx(2.405)
    assert gere["continual.ap.std"] == pytest.approx(np.std([0.5, 0.6], ddof=1))
    assert shown.iloc[3]["AP"] == "0.550 ± 0.071" and "stage 2" in caption
    assert continual_table(pd.DataFrame([{"method": "supervised", "loss": 2.0}]), {}) is None


def test_headline_states_both_criteria_of_the_claim():
    nums = {}
    lines = headline_lines(_rows(), nums)
    claim = nums["continual"]["claim"]
    assert claim["gere_rise"] == pytest.approx(0.205) and claim["seq_ft_rise"] == pytest.approx(3.005)
    assert claim["keeps_general"] and claim["ap_no_worse"]
    assert any("met" in ln and "NOT" not in ln for ln in lines)



def test_stage_figures_plot_the_per_stage_means():
    fig, _ = continual_general(_rows(), {})
    lines = {ln.get_label(): ln for ln in fig.axes[0].get_lines()}
    assert set(lines) == {"seq-ft", "replay", "gere w=100"}
    st, y = lines["seq-ft"].get_data()  # stage 0 is the base model, then the seed means: 2.2 + 3.0 k / 2 + 0.005
    np.testing.assert_allclose(st, [0, 1, 2])
    np.testing.assert_allclose(y, [2.2, 3.705, 5.205])
    fig, _ = continual_accuracy(_rows(), {})
    ap = {ln.get_label(): ln.get_data()[1] for ln in fig.axes[0].get_lines()}
    np.testing.assert_allclose(ap["gere w=100"], [0.55, 0.55])  # the seeds' mean AP after stages 1 and 2


def test_sequence_metrics_ap_forgetting_and_harmonic_mean():
    hist = [{"stage": 0, "accuracy": {}, "general_loss": 2.0},
            {"stage": 1, "accuracy": {"a": 0.8}, "general_loss": 2.1},
            {"stage": 2, "accuracy": {"a": 0.5, "b": 0.9}, "general_loss": 2.5}]
    m = sequence_metrics(hist, mmlu=0.6)
    assert m["ap"] == pytest.approx(0.7) and m["forgetting"] == pytest.approx(0.3)
    assert m["general_retention"] == pytest.approx(np.exp(-0.5))
    assert m["f1_retention"] == pytest.approx(2 * 0.7 * np.exp(-0.5) / (0.7 + np.exp(-0.5)))
    assert m["f1"] == pytest.approx(2 * 0.6 * 0.7 / 1.3)  # the paper's F1: MMLU and AP
    assert sequence_metrics(hist)["f1"] is None  # no MMLU, no F1 (the retention's has its own name)


def test_missing_mmlu_or_accuracy_gives_no_f1_rather_than_zero():
    """A stage without MMLU (NaN in the results table) or without test rows (AP NaN) has no F1, not F1 = 0."""
    from suite.continual import harmonic_mean

    assert harmonic_mean(float("nan"), 0.5) is None and harmonic_mean(0.5, None) is None
    assert harmonic_mean(0.0, 0.5) == 0.0
    hist = [{"stage": 0, "accuracy": {}, "general_loss": 2.0},
            {"stage": 1, "accuracy": {"a": float("nan")}, "general_loss": 2.0}]
    assert sequence_metrics(hist, mmlu=0.6)["f1"] is None and sequence_metrics(hist, mmlu=0.6)["f1_retention"] is None
    df = _rows()
    df["benchmarks.mmlu.overall"] = np.nan          # e.g. only the base model ran MMLU
    shown, raw, _ = continual_table(df, {})
    assert "F1 (MMLU, AP)" not in shown and "continual.f1.mean" not in raw
    df.loc[(df["method"] == "gere") & (df["continual.stage"] == 2), "benchmarks.mmlu.overall"] = 0.6
    shown, raw, _ = continual_table(df, {})
    f1 = raw.set_index("variant")["continual.f1.mean"]
    assert f1["gere w=100"] == pytest.approx(np.mean([2 * 0.6 * a / (0.6 + a) for a in (0.5, 0.6)]))
    assert np.isnan(f1["seq-ft"]) and np.isnan(f1["replay"])
