import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from experiments.measure import FORMS, count_macs, evaluate, inference_copy, layer_macs, param_counts
from experiments.models import create_model


def _net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2, groups=2),
                         nn.ReLU(), nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def _flop_counter_macs(model, x):
    with FlopCounterMode(display=False) as fc:
        model(x)
    return fc.get_total_flops() // 2


def test_dense_macs_match_torch_flop_counter():
    model, x = _net(), torch.randn(1, 3, 16, 16)
    expected = _flop_counter_macs(model, x)
    assert sum(layer_macs(model, x).values()) == expected
    macs = count_macs(model, x)
    # torch-pruning's counter also counts one op per bias add and per ReLU output element
    bias_adds = 8 * 16 * 16 + 16 * 7 * 7 + 10
    relu_ops = 8 * 16 * 16 + 16 * 7 * 7
    assert macs["macs_dense"] == expected + bias_adds + relu_ops


def test_effective_macs_scale_with_layer_density():
    model, x = _net(), torch.randn(1, 3, 16, 16)
    dense = count_macs(model, x)
    per_layer = layer_macs(model, x)
    with torch.no_grad():
        model[0].weight[: model[0].weight.shape[0] // 2] = 0  # half of layer 0
        model[5].weight.zero_()                              # all of the classifier
    eff = count_macs(model, x)["macs_effective"]
    expected = dense["macs_dense"] - per_layer["0"] * 0.5 - per_layer["5"]
    assert abs(eff - expected) <= 1


def test_param_counts_and_sparsity():
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2, bias=False))
    with torch.no_grad():
        model[0].weight[0] = 0
    c = param_counts(model)
    assert c["params_total"] == 4 * 3 + 3 + 3 * 2
    assert c["prunable_total"] == 18 and c["prunable_nonzero"] == 14
    assert abs(c["sparsity"] - 4 / 18) < 1e-9


def test_evaluate_topk_against_brute_force():
    torch.manual_seed(1)
    logits = torch.randn(50, 20)
    y = torch.randint(0, 20, (50,))
    model = nn.Identity()
    out = evaluate(model, [(logits[:25], y[:25]), (logits[25:], y[25:])])
    top1 = (logits.argmax(1) == y).float().mean() * 100
    top5 = (logits.topk(5, 1).indices == y[:, None]).any(1).float().mean() * 100
    assert abs(out["acc"] - top1.item()) < 1e-9 and abs(out["acc5"] - top5.item()) < 1e-9
    assert abs(out["loss"] - torch.nn.functional.cross_entropy(logits, y).item()) < 1e-5


def test_inference_copy_folds_bn_into_nhwc_and_keeps_outputs():
    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, in_channels=1, image_size=28)
    for m in model.modules():  # non-trivial BN statistics, so folding has something to fold
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    model.train()
    x = torch.randn(4, 1, 28, 28)
    net = inference_copy(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules())
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d) and m.kernel_size != (1, 1)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    with torch.no_grad():
        ref = model.eval()(x)
        out = net(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the original is untouched


def test_speedups_take_each_models_fastest_form_at_its_best_round(monkeypatch):
    from experiments import measure

    times = {("d", "eager"): [5.0, 4.0, 6.0], ("d", "deploy"): [3.0, 9.0, 9.0], ("d", "sparse"): [4.0, 4.0, 4.0],
             ("p", "eager"): [2.0, 2.0, 2.0], ("p", "deploy"): [1.5, 0.5, 3.0], ("p", "sparse"): [0.6, 0.7, 0.8]}
    calls = {k: iter(v) for k, v in times.items()}
    forms = ("eager", "deploy", "sparse")
    monkeypatch.setattr(measure, "_faithful_forms",
                        lambda net, fs, x, who: {f: ((net, f), x) for f in fs})
    monkeypatch.setattr(measure, "forms_for", lambda net, allowed: tuple(allowed))
    monkeypatch.setattr(measure, "latency_ms", lambda key, x, repeats: next(calls[key]))
    out = measure.speedups("d", "p", {64: torch.zeros(1)}, repeats=1, rounds=3, forms=forms)
    assert out["speedup_bs64"] == 3.0 / 0.5 and out["speedup_form_bs64"] == "deploy vs dense deploy"
    assert (out["dense_latency_best_ms_bs64"], out["latency_best_ms_bs64"]) == (3.0, 0.5)


def _resnet8_with_bn_statistics():
    from experiments.models import create_model

    torch.manual_seed(0)
    model = create_model("resnet8", num_classes=10, in_channels=1, image_size=28).eval()
    with torch.no_grad():
        for m in model.modules():   # non-trivial BN statistics, so folding them is exercised
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return model


@pytest.mark.parametrize("form", ["deploy", "frozen", "onnxruntime"])
def test_each_timing_form_computes_what_the_model_computes(form):
    from experiments.measure import in_form

    model = _resnet8_with_bn_statistics()
    x = torch.randn(3, 1, 28, 28)
    net, xd = in_form(model, form, x)
    if form == "deploy":
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
        assert xd.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(net(xd), model(x), rtol=1e-4, atol=1e-4)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())   # the original is untouched


@pytest.mark.parametrize("form", ["deploy", "frozen", "onnxruntime"])
def test_each_timing_form_of_a_vit_computes_what_it_computes(form):
    """A model without BatchNorm is not FX-traced for folding (a traced timm ViT failed ONNX export: its attention's
    ``is_causal`` became a traced tensor), so the ViT has all its timing forms."""
    import importlib.util

    from experiments.measure import in_form

    if form == "onnxruntime" and importlib.util.find_spec("onnxruntime") is None:
        pytest.skip("onnxruntime is optional ([deploy])")
    torch.manual_seed(0)
    model = create_model("vit_micro", 10, 1, 28).eval()
    x = torch.randn(3, 1, 28, 28)
    net, xd = in_form(model, form, x)
    assert not isinstance(net, torch.fx.GraphModule)
    with torch.no_grad():
        torch.testing.assert_close(net(xd), model(x), rtol=1e-4, atol=1e-4)


def test_a_form_that_deviates_or_fails_is_not_timed(monkeypatch, caplog):
    from experiments import measure

    model = _resnet8_with_bn_statistics()
    real = measure.in_form

    def in_form(net, form, x):
        if form == "frozen":
            raise RuntimeError("cannot trace")
        net, x = real(net, form, x)
        return (lambda inp: net(inp) + 0.01 if form == "deploy" else net(inp)), x

    monkeypatch.setattr(measure, "in_form", in_form)
    with torch.no_grad():
        runs = measure._faithful_forms(model, ("eager", "deploy", "frozen"), torch.randn(2, 1, 28, 28), "dense")
    assert list(runs) == ["eager"]
    assert "frozen of the dense model is unavailable" in caplog.text and "deploy of the dense model deviates" in caplog.text
    with torch.no_grad():   # nothing faithful left: the model is timed as it is, and the log says so
        runs = measure._faithful_forms(model, ("deploy", "frozen"), torch.randn(2, 1, 28, 28), "pruned")
    assert list(runs) == ["eager"] and "no timing form of ['deploy', 'frozen']" in caplog.text


def test_the_sparse_form_is_timed_only_for_a_model_with_mostly_zero_linear_layers():
    from experiments.measure import forms_for
    from experiments.models import create_model

    import importlib.util

    ort = ("onnxruntime",) if importlib.util.find_spec("onnxruntime") else ()   # an optional dependency ([deploy])
    model = create_model("lenet300", num_classes=10, in_channels=1, image_size=28)
    assert forms_for(model) == ("eager", "deploy", "frozen") + ort
    with torch.no_grad():
        model.fc1.weight[:, : model.fc1.in_features * 3 // 4] = 0.0   # 75 % zeros in one layer
    assert forms_for(model) == ("eager", "deploy", "frozen") + ort + ("sparse",)
    assert forms_for(model, ("eager", "sparse")) == ("eager", "sparse")


def test_sparse_form_computes_what_the_masked_model_computes():
    from experiments.measure import in_form
    from experiments.models import create_model

    torch.manual_seed(0)
    model = create_model("lenet300", num_classes=10, in_channels=1, image_size=28).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Linear):
                m.weight[torch.rand(m.weight.shape) < 0.97] = 0.0
    x = torch.randn(64, 1, 28, 28)
    net, _ = in_form(model, "sparse", x)
    with torch.no_grad():
        torch.testing.assert_close(net(x), model(x), rtol=1e-4, atol=1e-5)


def test_a_run_records_its_speedup_and_warns_when_zeros_buy_no_time(tmp_path, caplog):
    from conftest import TINY, compose_cfg

    from experiments.pipeline import run

    rec = run(compose_cfg(TINY + ["method=magnitude", "sparsity.target=0.9", "measure.dense_latency=true",
                                  "measure.speedup_batches=[1,16,64]"], tmp_path))
    m = rec["metrics"]
    for b in (1, 16, 64):
        assert m[f"speedup_bs{b}"] == pytest.approx(m[f"dense_latency_best_ms_bs{b}"] / m[f"latency_best_ms_bs{b}"])
        pruned_form, dense_form = m[f"speedup_form_bs{b}"].split(" vs dense ")
        assert pruned_form in FORMS and dense_form in FORMS and dense_form != "sparse"   # no zeros in the dense model
    assert m["mac_reduction"] == pytest.approx(m["dense_macs"] / m["macs_effective"]) and m["mac_reduction"] > 5
    assert m["param_reduction"] == pytest.approx(m["dense_params"] / m["params_nonzero"])
    assert m["padded_mac_reduction"] == pytest.approx(1.0)   # zeros change no layer's width
    assert m["speedup_bs64"] < 0.5 * m["mac_reduction"]   # zeros run on the dense kernels: no 5x from them
    assert ("CSR kernels recover only part" if m["speedup_form_bs64"].startswith("sparse") else
            "same dense kernels") in caplog.text


def test_padded_macs_round_each_output_width_up_to_the_block():
    from experiments.measure import padded_macs

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 20, 3), nn.Flatten(),
                        nn.Linear(20 * 6 * 6, 5))
    x = torch.zeros(1, 3, 8, 8)
    # brute force: conv 3->4 on 8x8 pays for 16 outputs; conv 4->20 on 6x6 for 32; linear 720->5 for 16
    want = 16 * 64 * 3 * 9 + 32 * 36 * 4 * 9 + 16 * 720
    assert padded_macs(net, x, block=16) == want
    assert padded_macs(net, x, block=1) == layer_macs_total(net, x)


def layer_macs_total(net, x):
    from experiments.measure import layer_macs
    return sum(layer_macs(net, x).values())


def test_channel_block_auto_is_the_cpu_kernels_block_and_a_bad_value_names_the_key(monkeypatch):
    from experiments import measure
    from experiments.errors import ConfigError

    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    assert measure.channel_block("auto") == 16 and measure.channel_block(4) == 4
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX2")
    assert measure.channel_block("auto") == 8
    with pytest.raises(ConfigError, match=r"method.round_to=0: .* or auto \(this CPU's conv kernel block, 8 here\)"):
        measure.channel_block(0, "method.round_to")
    with pytest.raises(ConfigError, match="measure.channel_block=blocky"):
        measure.channel_block("blocky")


def test_device_name_names_the_cpu_its_isa_and_threads(monkeypatch):
    from experiments import measure
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: "AVX512")
    with open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), None)
    name = measure.device_name("cpu")
    assert name.endswith(f"(AVX512, {torch.get_num_threads()} thread(s))")
    if model:
        assert name.startswith(model)
