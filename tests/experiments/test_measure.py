import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from experiments.measure import count_macs, evaluate, inference_copy, layer_macs, param_counts
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
