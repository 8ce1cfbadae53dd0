"""Reports: the paper's Tables 1-5 and Figures 1 and 3 regenerated from the runs present (`python -m harness.report`),
and any runs side by side (`python -m harness.compare`).

grid.py (which runs fill which cell), recipe.py (the cell's recipe; runs that differ are variants), runs.py (run
records from disk or MLflow), bootstrap.py (95% intervals over items and seeds), build.py (cells beside the paper's
numbers), render.py (CSV and Markdown), figures.py (PNG), generate.py (all of them), compare.py (any runs side by
side), views.py (MLflow UI views).
"""
