"""Reports: the paper's Tables 1-5 and Figures 1 and 3 regenerated from the runs present (`python -m harness.report`).

grid.py (which runs fill which cell), runs.py (run records from disk or MLflow), build.py (cells beside the paper's
numbers), render.py (CSV and Markdown), figures.py (PNG), generate.py (all of them), views.py (MLflow UI views).
"""
