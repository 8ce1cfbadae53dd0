"""No preference training: the SFT model itself is evaluated (the "Tulu 2 (SFT)" rows of the tables).

    python -m harness algorithm=none
"""

from harness.algorithms import Algorithm


class NoTraining(Algorithm):
    name = "none"


ALGORITHM = NoTraining()
