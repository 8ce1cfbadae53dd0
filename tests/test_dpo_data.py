"""DPO's data as the paper fed it: over-length pairs are truncated and kept (EasyLM data.py truncates to seq_length;
the paper's DPO command does not remove truncated samples), unless algorithm.drop_overlength asks for dropping."""

from harness import pipeline


def test_dpo_keeps_over_length_pairs_unless_asked_to_drop_them(run_config, tiny_base):
    cfg = run_config("algorithm.max_length=48", "dataset.max_bad_fraction=1.0")
    assert cfg.algorithm.name == "dpo" and not cfg.algorithm.drop_overlength
    inputs = pipeline.load_training_data(cfg)
    loaded = len(inputs.train)
    kept = pipeline.fit_training_data(cfg, inputs, tiny_base)
    assert len(kept.train) == loaded
    dropped = pipeline.fit_training_data(run_config("algorithm.max_length=48", "dataset.max_bad_fraction=1.0",
                                                    "algorithm.drop_overlength=true"), inputs, tiny_base)
    assert 0 < len(dropped.train) < loaded  # 48 tokens is short enough to drop some of the toy pairs
