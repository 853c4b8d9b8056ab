"""Plotly view of a :class:`collectives.training.scaling.ScalingStudy` (plotly imported on use).

Examples
--------
>>> import fabric, collectives
>>> from concurrent.futures import ThreadPoolExecutor
>>> from collectives.training.scaling import scaling_study
>>> with ThreadPoolExecutor(1) as pool:
...     s = scaling_study(collectives.MODELS["llama3-8b"], [16, 32], build=lambda n: fabric.dgx_superpod(n // 8),
...                       global_batch=16, pue=1.2, executor=pool, progress=False)
>>> [t.name for t in study(s).data]
['step time (s)', 'MFU (%)', 'goodput (%)', 'tokens per day (B)', 'facility power (MW)']
"""

from collectives.plot import LAYOUT, palette


def study(result):
    """Three stacked panels against the GPU count (log axis): step time and MFU; goodput and
    tokens per day; facility power. Sizes without a fitting plan are left out."""
    from plotly.subplots import make_subplots
    import plotly.graph_objects as go

    points = [p for p in result.points if not p.error]
    xs = [p.gpus for p in points]
    colors = palette()
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.06,
                        specs=[[{"secondary_y": True}], [{"secondary_y": True}], [{}]])
    series = [
        ("step time (s)", [p.step_time for p in points], 1, False),
        ("MFU (%)", [100 * p.mfu for p in points], 1, True),
        ("goodput (%)", [100 * p.goodput for p in points], 2, False),
        ("tokens per day (B)", [p.tokens_per_day / 1e9 for p in points], 2, True),
        ("facility power (MW)", [p.facility_watts / 1e6 for p in points], 3, False),
    ]
    hover = [f"{p.gpus:,} GPUs, batch {p.global_batch:,}<br>"
             + " ".join(f"{k}{v}" for k, v in p.plan.items() if k in ("tp", "pp", "dp", "cp", "ep") and v != 1)
             + ("" if p.fabric_aware else "<br>(fabric-blind)") for p in points]
    for i, (name, ys, row, secondary) in enumerate(series):
        trace = go.Scatter(x=xs, y=ys, name=name, mode="lines+markers", hovertext=hover,
                           line=dict(color=colors[i % len(colors)], dash="dash" if secondary else None))
        if row == 3:
            fig.add_trace(trace, row=row, col=1)
        else:
            fig.add_trace(trace, row=row, col=1, secondary_y=secondary)
    fig.update_xaxes(type="log", title_text="GPUs", row=3, col=1)
    fig.update_layout(LAYOUT, height=800,
                      title=dict(text=f"Scaling {result.model}<br><sup>batch grows with the cluster up to "
                                      f"{result.max_tokens_per_step:,} tokens per step; PUE {result.pue:g}</sup>",
                                 x=0.01))
    return fig
