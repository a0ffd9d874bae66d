# flowprune — `make help` lists targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
PROFILE ?= paper
STAMP := .install.stamp

.PHONY: help install data run test test-full sweep-example reproduce-table1 clean

help:  ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PIP) install -e ".[dev,cluster]"
	@touch $(STAMP)

install: $(STAMP) data  ## install the package, its dependencies and Fashion-MNIST

data:  ## install Debian's Fashion-MNIST (where apt is available and the files are missing)
	@if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && command -v apt-get >/dev/null; then \
		(apt-get update -qq && apt-get install -y -qq dataset-fashion-mnist) || \
		echo "warning: could not apt-get install dataset-fashion-mnist; torchvision will try to download it"; \
	fi

run: install  ## the main job: Fashion-MNIST, LeNet-300-100, dense -> prune to 90 % -> evaluate
	$(PYTHON) run.py

test: install  ## the fast test set (< 10 min on 2 cores)
	$(PYTHON) -m pytest -m "not slow" -q

test-full: install  ## every test, slow ones included
	$(PYTHON) -m pytest -q

sweep-example: install  ## Hydra multirun over three sparsities, then one table
	$(PYTHON) run.py -m sparsity=90,95,98 experiment_name=sweep_example
	$(PYTHON) scripts/make_table.py --experiment sweep_example --rows method --cols sparsity --name sweep_example

clean:  ## remove generated results, caches and Hydra dirs (keeps committed tables/figures)
	rm -rf results/runs results/wandb results/checkpoints results/cache results/hydra outputs multirun .pytest_cache
