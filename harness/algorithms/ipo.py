"""IPO (Azar et al. 2023, "A General Theoretical Paradigm to Understand Learning from Human Preferences"): DPO's
data and trainer with the squared loss (log-ratio margin - 1/(2 beta))^2, through TRL's `loss_type: ipo`. Not in the
paper: an extension on the same grid.

    python -m harness algorithm=ipo dataset=ultrafeedback_fg model=tulu2_13b eval=paper
"""

from __future__ import annotations

from harness.algorithms.dpo import DPO
from harness.config.errors import ConfigError


class IPO(DPO):
    name = "ipo"

    def check(self, cfg) -> None:
        super().check(cfg)
        if cfg.algorithm.loss_type != "ipo":
            raise ConfigError(f"algorithm=ipo trains with TRL's loss_type 'ipo', but algorithm.loss_type="
                              f"{cfg.algorithm.loss_type!r}; use algorithm=dpo algorithm.loss_type=... for other losses")


ALGORITHM = IPO()
