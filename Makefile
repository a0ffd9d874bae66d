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

# Hyperflows Table 1: PROFILE=paper (CIFAR on GPUs, the launcher of conf/local or Hydra's default) or PROFILE=proxy
# (Fashion-MNIST LeNet-300/LeNet-5 on 2 CPU cores, two jobs at a time). Dense models are trained first, once
# per (model, seed), then the method grid of the preset's hydra.sweeper.params, then the table.
TABLE1_EXP_paper := hyperflows/table1
TABLE1_EXP_proxy := hyperflows/table1_proxy
TABLE1_RUN_proxy := OMP_NUM_THREADS=1
TABLE1_ARGS_proxy := hydra/launcher=joblib hydra.launcher.n_jobs=2
TABLE1_EXP := $(TABLE1_EXP_$(PROFILE))

reproduce-table1: install  ## Hyperflows Table 1 grid + results/tables/table1.{md,csv,tex} (PROFILE=paper|proxy)
	@test -n "$(TABLE1_EXP)" || { echo "error: PROFILE=$(PROFILE) is not paper or proxy"; exit 2; }
	$(TABLE1_RUN_$(PROFILE)) $(PYTHON) run.py -m experiment=$(TABLE1_EXP) $(TABLE1_ARGS_$(PROFILE)) method=dense 'stages=[pretrain,evaluate]' sparsity.target=0.9
	$(TABLE1_RUN_$(PROFILE)) $(PYTHON) run.py -m experiment=$(TABLE1_EXP) $(TABLE1_ARGS_$(PROFILE))
	$(PYTHON) scripts/hyperflows_table1.py --experiment $(TABLE1_EXP)

clean:  ## remove generated results, caches and Hydra dirs (keeps committed tables/figures)
	rm -rf results/runs results/wandb results/checkpoints results/cache results/hydra outputs multirun .pytest_cache
