"""How good, how fast, and what this machine can do: `facecast eval`, `bench` and `doctor`.

options   EvalOptions, BenchOptions
eval      evaluate / evaluate_clip: the eval orchestrator, over
            clips    a real clip decoded, tracked, its portrait frame picked (Clip, MODES)
            rows     the rows scored per clip: real, still, loudness, facecast, twin (GENERATORS)
            metrics  what is measured on a row (MetricSpec, METRICS, score_row, identity model)
            stats    lip-sync margins with block-bootstrap intervals (Margin, corr_margin)
            report   RowResult, ClipReport, verdicts; rich table, Markdown, JSON
            plots    mouth opening over time, contact sheet
bench     run_bench / run_case: speed and memory per stage, and their tables
doctor    run(): checks that run a kernel, open NVENC and load every bundled model

Nothing is imported here: each command loads only the modules it uses.
"""
