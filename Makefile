# flowprune — `make help` lists targets.
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
FLOWPRUNE ?= $(PYTHON) -m flowprune
PROFILE ?= paper
STAMP := .install.stamp

.PHONY: help install data run test test-full sweep-example reproduce-table1 reproduce-agf-proxy study tables clean

help:  ## list targets
	@grep -E '^[a-zA-Z0-9_-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-20s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PIP) install -e ".[dev,cluster,deploy,kernels]"
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
	$(FLOWPRUNE) table --experiment sweep_example --rows method --cols sparsity --name sweep_example

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
	$(FLOWPRUNE) report table1 --experiment $(TABLE1_EXP)

# AGF proxies (Fashion-MNIST ResNet-8 / vit_micro, 2 CPU cores, about 2 h in all): every experiment's sweeps
# (the commands in each conf/experiment/agf/*_proxy.yaml header), then every report. The paper-scale presets
# (same names without _proxy) list their own sweeps in their headers.
AGF := OMP_NUM_THREADS=1 $(PYTHON) run.py -m hydra/launcher=joblib hydra.launcher.n_jobs=2 experiment=agf/
SCRATCH_SWEEP := scorer=agf sparsity.target=0.75,0.875,0.96875 seed=0,1,2 method.from_scratch=true

reproduce-agf-proxy: install  ## every AGF proxy experiment + its tables/figures under results/
	$(AGF)stress75_proxy scorer=agf,taylor,taylor_signed,l1,wanda,ria,snip,bn_scale,random seed=0,1,2
	$(AGF)phase_transition_proxy method=dense method.finetune=true trainer.finetune.epochs=1,3 seed=0,1,2
	$(AGF)phase_transition_proxy scorer=agf,ria,random sparsity.target=0.75,0.875,0.96875 trainer.finetune.epochs=1,3 seed=0,1,2
	$(AGF)phase_transition_proxy $(SCRATCH_SWEEP)
	$(AGF)selection_proxy seed=0,1,2
	$(AGF)vit_bottleneck_proxy scorer=agf,wanda,ria sparsity.target=0.5,0.75 seed=0,1,2
	$(AGF)vit_bottleneck_proxy scorer=agf method.calibration.batches=100 seed=0,1,2
	$(AGF)vit_bottleneck_proxy method=dense method.finetune=true '~method.calibration' seed=0,1,2
	$(AGF)signal_compression_proxy trainer.pretrain.epochs=1,3 seed=0,1,2
	$(AGF)routing_proxy
	$(AGF)routing_size_proxy
	for r in agf_stress agf_phase agf_selection agf_vit agf_signal routing; do \
		$(FLOWPRUNE) report $$r || exit 1; done

# The reproduction study (README "Study"): each conf/study/<name>.yaml runs dense models, the LR grid on val, then
# every seed at the chosen LR; records go to results/store/ (committed) and runs already recorded are skipped,
# so `make study` continues where the last sitting stopped. STUDIES=<names> runs a subset (one chunk).
STUDIES ?= h1_lenet300 h2_lenet300 h2_lenet300_e120 h1_lenet5 a1_resnet8 a2_resnet8 a3_vit_micro a4_resnet8 a5_resnet8 s1_resnet8 s1_route_resnet8 s1_vit_micro d1_resnet8

study: install  ## run what is missing of the study (STUDIES=...), 2 jobs at a time; commit results/store after each chunk
	$(PYTHON) -m experiments.study $(STUDIES) --jobs 2

tables: install  ## rebuild every committed study table (results/tables/study_*, claims) from results/store
	$(FLOWPRUNE) report study
	$(FLOWPRUNE) report claims

clean:  ## remove generated results, caches and Hydra dirs (keeps committed tables/figures)
	rm -rf results/runs results/wandb results/checkpoints results/cache results/hydra outputs multirun .pytest_cache
