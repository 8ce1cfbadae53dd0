"""Learning curves (algorithm.eval_every): saving the policy every N steps leaves its training unchanged, so eval_every
is no part of the recipe. The curve of a real run is tested with the runs of tests/test_compare.py."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from harness.pipeline import fit_training_data, load_training_data, policy_stage
from harness.records.identity import identity
from harness.train import dpo


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(str(next(directory.glob("*.safetensors"))))


def test_saving_checkpoints_leaves_the_final_policy_bit_for_bit_equal(run_config, tiny_base, tmp_path):
    trained = {}
    for every in (0, 1):
        cfg = run_config("algorithm=dpo", "tracking=none", "algorithm.max_steps=3", f"algorithm.eval_every={every}")
        inputs = fit_training_data(cfg, load_training_data(cfg), tiny_base)
        out = tmp_path / f"every{every}"
        record = dpo.train(cfg.algorithm, tiny_base, cfg.model, inputs.train, inputs.heldout, out, "none", "t", cfg.seed)
        trained[every] = (record, out)
    (plain, plain_dir), (saving, saving_dir) = trained[0], trained[1]
    assert plain["global_step"] == saving["global_step"] == 3 and plain["train_loss"] == saving["train_loss"]
    final, with_saves = weights(plain_dir / "model"), weights(saving_dir / "model")
    assert final.keys() == with_saves.keys() and all(torch.equal(final[k], with_saves[k]) for k in final)
    # the checkpoints: steps 1 and 2 (not the last step: that is the policy), each a loadable model of its own
    assert sorted(p.name for p in (saving_dir / "curve").iterdir()) == ["step-1", "step-2"]
    assert not (plain_dir / "curve").exists()
    step1, step2 = weights(saving_dir / "curve" / "step-1"), weights(saving_dir / "curve" / "step-2")
    assert any(not torch.equal(step1[k], step2[k]) for k in step1) and any(not torch.equal(step2[k], final[k]) for k in final)
    assert (saving_dir / "curve" / "step-1" / "tokenizer_config.json").exists()


def test_eval_every_is_neither_in_the_policy_key_nor_in_the_run_identity(run_config, tiny_base):
    plain, curved = run_config("algorithm=dpo"), run_config("algorithm=dpo", "algorithm.eval_every=4",
                                                             "algorithm.curve_suite=smoke")
    assert policy_stage(plain, tiny_base).key == policy_stage(curved, tiny_base).key
    assert identity(plain) == identity(curved)
