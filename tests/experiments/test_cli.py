"""run.py's argv preflight: numeric config-group options are quoted so Hydra accepts them."""
from experiments.cli import quote_numeric_options


def test_numeric_group_options_are_quoted_and_nothing_else():
    argv = ["-m", "sparsity=90,95,98", "sparsity.target=0.93", "seed=0,1", "+sparsity=96.5", "method=gmp",
            "trainer.epochs=3", "sparsity=\"75\""]
    assert quote_numeric_options(argv) == ["-m", 'sparsity="90","95","98"', "sparsity.target=0.93", "seed=0,1",
                                           '+sparsity="96.5"', "method=gmp", "trainer.epochs=3", "sparsity=\"75\""]
