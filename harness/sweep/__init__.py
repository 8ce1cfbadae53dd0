"""Sweeps: every paper table as one command, deduplicated, resumable, on this machine or on Slurm.

    python -m harness.sweep plan all                 # plan: unique runs and stages, complete ones, GPU-hours
    python -m harness -m +sweep=table1 [hydra/launcher=slurm]
    python -m harness.sweep status --latest          # a submitted sweep's runs

grid.py (a sweep's jobs), plan.py (runs and stages after deduplication), cost.py (GPU-hours), launcher.py (what the
Hydra launchers of hydra_plugins/harness_sweep add), status.py (sweep.json, summary, status), processes.py (training
on several processes in one job), slurm_local.py (a real single-node Slurm cluster for tests).
"""
