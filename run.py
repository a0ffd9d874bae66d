"""flowprune entry point: ``python run.py [group=option ...] [key=value ...]`` (Hydra)."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from experiments.cli import main_entry

    return main_entry(cfg)


if __name__ == "__main__":
    import sys

    from experiments.cli import preflight

    preflight(sys.argv[1:])
    main()
