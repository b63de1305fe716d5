"""The metrics page's training curves: every periodic evaluation (train.eval_every) against its step.

metrics/train.json holds the evaluations (``eval_history``: step and the evaluate stage's numbers
under their MLflow names) and the best step by `train.select_by`. Drawn here as one small chart
per number, the best step marked, so a reader sees whether the run peaked and degraded without
opening MLflow (where the same numbers are the ``eval_<name>`` metrics).
"""

from __future__ import annotations

import base64
import html
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

# MLflow name -> (label, which way is better); shown in this order when present
CURVES = {
    "fad_mean": ("FAD (lower is better)", "min"),
    "clap_score_mean": ("CLAP score (higher is better)", "max"),
    "cond_fg_accuracy": ("conditioning: foreground accuracy (mel reading)", "max"),
    "cond_bg_accuracy": ("conditioning: background accuracy (mel reading)", "max"),
    "cond_mean_accuracy": ("conditioning: mean of the foreground and background accuracy", "max"),
    "cond_fg_worst_kind_accuracy": ("conditioning: the worst foreground kind's accuracy", "max"),
    "cond_diversity": ("diversity (x real; near 0 = mode collapse)", "max"),
}


def curves_png(history: list[dict], best_step: int | None) -> bytes:
    """One chart per number in CURVES that the evaluations hold, against the training step."""
    names = [name for name in CURVES if any(name in entry for entry in history)]
    fig = Figure(figsize=(8, 2.2 * len(names)), dpi=100)
    FigureCanvasAgg(fig)
    for row, name in enumerate(names, start=1):
        ax = fig.add_subplot(len(names), 1, row)
        points = [(e["step"], e[name]) for e in history if name in e]
        ax.plot([s for s, _ in points], [v for _, v in points], marker="o", color="#357")
        if name == "fad_mean" and all("fad_ci_low" in e for e in history):
            ax.fill_between([e["step"] for e in history], [e["fad_ci_low"] for e in history],
                            [e["fad_ci_high"] for e in history], color="#357", alpha=0.15, label="95 % (bootstrap)")
            ax.legend(fontsize=7, loc="best")
        if best_step is not None:
            ax.axvline(best_step, color="#c53", linestyle="--", linewidth=1)
        ax.set_title(CURVES[name][0], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    fig.axes[-1].set_xlabel("training step", fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def read_on(select: dict) -> str:
    """Which prompts the curves' conditioning numbers read (train.select_by.prompts)."""
    if select.get("prompts") != "train":
        return ""
    return (f" The conditioning numbers read {int(select.get('n_prompts', 0))} training captions, not the dev "
            "prompts (train.select_by.prompts: train): the step kept is then scored on prompts it was not chosen on.")


def curves_section(train: dict | None) -> list[str]:
    """The page's "During training" section from metrics/train.json, or a line saying why there is none."""
    body = ["<h2>During training (train.eval_every)</h2>"]
    history = (train or {}).get("eval_history") or []
    if not history:
        body.append("<p>No evaluation during training (train.eval_every is 0, or metrics/train.json predates it).</p>")
        return body
    select, best = train.get("select_by") or {}, train.get("best_step")
    png = base64.b64encode(curves_png(history, best)).decode("ascii")
    body.append(f'<img id="curves" alt="evaluation curves against the training step" '
                f'src="data:image/png;base64,{png}">')
    last = history[-1]
    metric = select.get("metric", "")
    body.append(f'<p class="note" id="best">Best step by {html.escape(str(metric))} ({html.escape(str(select.get("mode")))}): '
                f'{html.escape(str(best))} ({train.get("best_value", float("nan")):.4g}), dashed; last evaluated step '
                f'{last["step"]} ({last.get(metric, float("nan")):.4g}). model.pt holds the '
                f'{html.escape(str(train.get("exported")))} weights. Every {train.get("eval_every")} steps, first '
                f"generation seed; the same numbers are the MLflow metrics eval_&lt;name&gt;.{read_on(select)}</p>")
    return body
