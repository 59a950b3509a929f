"""Building blocks of the image/tabular catalogue: models, init, losses, schedules, augmentation,
gradient clipping, image-folder options."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from _helpers_augment import augment, hflip, random_crop
from hydra.utils import instantiate
from torch import nn

from dlhw.data.augment import Augment, color_jitter, gaussian_blur, random_affine
from dlhw.models import CNN, VGG, LeNet, ResNetSmall, vgg11, vgg11_small
from dlhw.nn.init import initialize, preactivation_variances


def n_params(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


def compose_group(group: str, name: str, overrides: tuple[str, ...] = ()):
    """The config of one group option, composed through conf/train.yaml."""
    from dlhw.config.compose import compose

    cfg = compose([f"{group}={name}", *overrides])
    return cfg[group]


# ----------------------------------------------------------------------------- models
def test_cnn_shapes_and_parameter_count() -> None:
    net = CNN((1, 28, 28), 10, filters=32, kernel_size=5, hidden=100)
    assert net(torch.zeros(4, 1, 28, 28)).shape == (4, 10)
    conv = 32 * 1 * 5 * 5 + 32
    fc1 = (32 * 14 * 14) * 100 + 100  # "same" padding, 2x2 pool: 28 -> 14
    assert n_params(net) == conv + fc1 + 100 * 10 + 10
    bn = CNN((1, 28, 28), 10, filters=32, kernel_size=5, hidden=100, batch_norm=True, dropout=0.5)
    # no biases before BatchNorm; BN adds weight + bias per channel / unit
    assert n_params(bn) == 32 * 25 + 2 * 32 + 32 * 14 * 14 * 100 + 2 * 100 + 1010
    assert any(isinstance(m, nn.Dropout) for m in bn.modules())
    k3 = CNN((1, 28, 28), 10, filters=8, kernel_size=3, hidden=0)
    assert n_params(k3) == 8 * 9 + 8 + 8 * 14 * 14 * 10 + 10


def test_vgg11_parameter_counts_by_hand() -> None:
    convs = [(3, 64), (64, 128), (128, 256), (256, 256), (256, 512), (512, 512), (512, 512), (512, 512)]
    weights = sum(9 * a * b for a, b in convs)  # 3x3, no bias before BN
    bn = 2 * sum(b for _, b in convs)
    net = vgg11((3, 32, 32), 10)
    assert n_params(net) == weights + bn + 512 * 10 + 10 == 9_228_362
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 10)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) == 8


def test_vgg11_small_plan_of_the_catalogue() -> None:
    convs = [(3, 8), (8, 16), (16, 32), (32, 32), (32, 64), (64, 64), (64, 64), (64, 64)]
    net = vgg11_small((3, 32, 32), 10)
    expected = sum(9 * a * b + 2 * b for a, b in convs) + (64 * 64 + 2 * 64) + (64 * 10 + 10)
    assert n_params(net) == expected == 149_778
    assert net(torch.zeros(3, 3, 32, 32)).shape == (3, 10)
    widths = [m.out_channels for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [8, 16, 32, 32, 64, 64, 64, 64]
    with pytest.raises(ValueError, match="at least 32x32"):
        VGG((1, 8, 8), 10, plan="vgg11")
    with pytest.raises(ValueError, match="model.plan"):
        VGG((3, 32, 32), 10, plan="vgg19")


def test_resnet_small_shapes_parameters_and_skip_connection() -> None:
    net = ResNetSmall((3, 64, 64), 2, channels=(8, 16), blocks=1)
    stem = 3 * 8 * 9 + 2 * 8
    block1 = 2 * (8 * 8 * 9 + 2 * 8)  # identity shortcut
    block2 = 8 * 16 * 9 + 2 * 16 + 16 * 16 * 9 + 2 * 16 + 8 * 16 + 2 * 16  # 1x1 projection
    assert n_params(net) == stem + block1 + block2 + 16 * 2 + 2 == 5130
    x = torch.randn(2, 3, 64, 64)
    assert net(x).shape == (2, 2)
    maps = net.feature_maps(x)
    assert [tuple(m.shape[1:]) for m in maps] == [(8, 32, 32), (8, 32, 32), (16, 16, 16)]
    # With the residual branch silenced (last BN scale 0) an identity block passes relu(x) through.
    block = net.stages[0].eval()
    nn.init.zeros_(block.body[4].weight)
    nn.init.zeros_(block.body[4].bias)
    h = torch.randn(2, 8, 5, 5)
    assert torch.allclose(block(h), torch.relu(h))


@pytest.mark.parametrize(
    "make",
    [
        lambda impl: CNN((1, 28, 28), 10, filters=4, kernel_size=3, hidden=16, batch_norm=True, impl=impl),
        lambda impl: vgg11_small((3, 32, 32), 10, impl=impl),
        lambda impl: ResNetSmall((3, 32, 32), 3, channels=(4, 8), impl=impl),
    ],
    ids=["cnn", "vgg11_small", "resnet_small"],
)
def test_models_build_from_the_hand_written_layers_too(make) -> None:
    torch_net, scratch_net = make("torch"), make("scratch")
    assert n_params(torch_net) == n_params(scratch_net)
    assert any(type(m).__module__ == "dlhw.nn.modules" for m in scratch_net.modules())
    scratch_net.load_state_dict(torch_net.state_dict())
    shape = (2, 1, 28, 28) if isinstance(torch_net, CNN) else (2, 3, 32, 32)
    x = torch.randn(shape)
    torch_net.eval()
    scratch_net.eval()
    assert torch.allclose(torch_net(x), scratch_net(x), atol=1e-4)


def test_model_configs_instantiate() -> None:
    for name, shape in (("cnn", (1, 28, 28)), ("vgg11_small", (3, 32, 32)), ("resnet_small", (3, 32, 32))):
        net = instantiate(compose_group("model", name), in_shape=shape, num_classes=10)
        assert net(torch.zeros(2, *shape)).shape == (2, 10)


# ----------------------------------------------------------------------------- init
@pytest.mark.parametrize(
    "scheme,expected_var",
    [("gaussian", 0.01**2), ("kaiming", 2 / 2000), ("xavier", 2 / (2000 + 1000))],
)
def test_init_variance_on_a_large_layer(scheme: str, expected_var: float) -> None:
    torch.manual_seed(0)
    layer = nn.Linear(2000, 1000)
    initialize(layer, scheme=scheme)
    assert layer.weight.var().item() == pytest.approx(expected_var, rel=0.02)
    assert layer.weight.mean().abs().item() < 0.05 * math.sqrt(expected_var)
    assert torch.count_nonzero(layer.bias) == 0


def test_kaiming_uses_the_conv_fan_in_and_configs_match() -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(64, 256, 3)
    instantiate(compose_group("init", "kaiming"))(conv)
    assert conv.weight.var().item() == pytest.approx(2 / (64 * 9), rel=0.02)
    lin = nn.Linear(1000, 1000)
    instantiate(compose_group("init", "gaussian", ("init.std=0.05",)))(lin)
    assert lin.weight.std().item() == pytest.approx(0.05, rel=0.02)
    instantiate(compose_group("init", "xavier"))(lin)
    assert lin.weight.var().item() == pytest.approx(1 / 1000, rel=0.02)


def test_init_leaves_batchnorm_alone_and_default_untouched() -> None:
    net = LeNet((3, 32, 32), 10, norm="batch")
    before = {k: v.clone() for k, v in net.state_dict().items()}
    initialize(net, "default")
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    initialize(net, "kaiming")
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d)]
    assert bns and all(torch.all(m.weight == 1) and torch.all(m.bias == 0) for m in bns)
    with pytest.raises(ValueError, match="init.scheme"):
        initialize(net, "orthogonal")


def test_he_keeps_preactivation_variance_across_depth_gaussian_shrinks_it() -> None:
    torch.manual_seed(0)
    layers: list[nn.Module] = []
    for _ in range(8):
        layers += [nn.Linear(512, 512), nn.ReLU()]
    net = nn.Sequential(*layers, nn.Linear(512, 10))
    x = torch.randn(1000, 512)
    he = [v for _, v in preactivation_variances(initialize(net, "kaiming"), x)]
    assert len(he) == 9
    assert all(0.4 < v / he[0] < 2.5 for v in he)  # about constant (theory: 2 per layer, 1 overall)
    g = [v for _, v in preactivation_variances(initialize(net, "gaussian", std=0.01), x)]
    # each layer multiplies the variance by 512 * 0.01^2 / 2 = 0.0256
    assert all(b < 0.05 * a for a, b in zip(g, g[1:], strict=False))
    assert g[-1] < 1e-10 * g[0]


def test_preactivation_variances_names_lenet_layers() -> None:
    torch.manual_seed(0)
    net = initialize(LeNet((3, 32, 32), 10), "kaiming")
    found = preactivation_variances(net, torch.randn(256, 3, 32, 32))
    assert [n for n, _ in found] == ["features.0", "features.3", "classifier.1", "classifier.3", "classifier.5"]
    assert all(v > 0.1 for _, v in found)
    assert net.training  # mode restored


# ----------------------------------------------------------------------------- losses
def test_binary_and_multiclass_loss_configs_compute_the_textbook_values() -> None:
    scores = torch.tensor([[2.0], [-0.5], [0.3]])
    target = torch.tensor([1, 1, 0])
    hinge = instantiate(compose_group("loss", "hinge"))
    # max(0, 1 - y s): y = +1, +1, -1 -> 0, 1.5, 1.3
    assert hinge(scores, target).item() == pytest.approx((0 + 1.5 + 1.3) / 3)
    logistic = instantiate(compose_group("loss", "logistic"))
    expected = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(0.5)) + math.log1p(math.exp(0.3))) / 3
    assert logistic(scores, target).item() == pytest.approx(expected, rel=1e-5)
    assert hinge.num_outputs(2) == 1
    with pytest.raises(ValueError, match="two-class"):
        logistic.num_outputs(10)
    mc = instantiate(compose_group("loss", "multiclass_hinge"))
    logits = torch.tensor([[1.0, 2.0, 0.5]])
    # sum over j != y of max(0, 1 - s_y + s_j) / C with y = 0: (2 + 0.5) / 3
    assert mc(logits, torch.tensor([0])).item() == pytest.approx(2.5 / 3)


# ----------------------------------------------------------------------------- optimizers and schedules
def _lrs(scheduler_name: str, epochs: int, overrides: tuple[str, ...] = (), lr: float = 1.0) -> list[float]:
    param = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    cfg = compose_group("scheduler", scheduler_name, ("trainer.max_epochs=" + str(epochs), *overrides))
    sched = instantiate(cfg)(optimizer=opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_schedule_values_per_epoch() -> None:
    assert _lrs("step", 9) == pytest.approx([1, 1, 1, 1, 0.1, 0.1, 0.1, 0.1, 0.01])
    assert _lrs("multistep", 9, ("scheduler.milestones=[2,5]",)) == pytest.approx(
        [1, 1, 0.1, 0.1, 0.1, 0.01, 0.01, 0.01, 0.01])
    cos = _lrs("cosine", 4)
    assert cos == pytest.approx([0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)])
    warm = _lrs("warmup_step", 8, ("scheduler.after.step_size=2",))
    assert warm == pytest.approx([0.1, 0.55, 1, 1, 0.1, 0.1, 0.01, 0.01])
    wc = _lrs("warmup_cosine", 6)  # 2 warm-up epochs, cosine over the other 4
    assert wc == pytest.approx([0.1, 0.55] + [0.5 * (1 + math.cos(math.pi * k / 4)) for k in range(4)])


def test_warmup_state_dict_resumes_the_same_schedule() -> None:
    from functools import partial

    from dlhw.optim.schedules import LinearWarmup

    def make():
        opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.5)
        after = partial(torch.optim.lr_scheduler.StepLR, step_size=1, gamma=0.5)
        return opt, LinearWarmup(opt, after, warmup_epochs=3, start_factor=0.2)

    opt, sched = make()
    for _ in range(4):
        opt.step()
        sched.step()
    state = sched.state_dict()
    opt2, sched2 = make()
    sched2.load_state_dict(state)
    opt2.param_groups[0]["lr"] = opt.param_groups[0]["lr"]
    for _ in range(3):
        for o, s in ((opt, sched), (opt2, sched2)):
            o.step()
            s.step()
        assert opt2.param_groups[0]["lr"] == pytest.approx(opt.param_groups[0]["lr"])
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5**4)


def test_warmup_refuses_bad_values_and_plateau() -> None:
    from dlhw.errors import UserError
    from dlhw.optim.schedules import LinearWarmup

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(UserError, match="start_factor"):
        LinearWarmup(opt, warmup_epochs=2, start_factor=0.0)
    with pytest.raises(UserError, match="ReduceLROnPlateau"):
        LinearWarmup(opt, torch.optim.lr_scheduler.ReduceLROnPlateau, warmup_epochs=2)


def test_plateau_config_cuts_the_rate_after_patience() -> None:
    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = instantiate(compose_group("scheduler", "plateau"))(optimizer=opt)
    for loss in (1.0, 0.9, 0.95, 0.95, 0.95):
        opt.step()
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


@pytest.mark.parametrize("name,cls", [("adamw", torch.optim.AdamW), ("rmsprop", torch.optim.RMSprop)])
def test_optimizer_configs(name: str, cls) -> None:
    opt = instantiate(compose_group("optimizer", name))(params=[nn.Parameter(torch.zeros(3))])
    assert isinstance(opt, cls) and opt.param_groups[0]["lr"] == 0.001


# ----------------------------------------------------------------------------- gradient clipping
class _RecordingSGD(torch.optim.SGD):
    """SGD that remembers the gradient each step saw (after Lightning's clipping)."""

    seen: list[torch.Tensor] = []

    def step(self, closure=None):
        loss = closure() if closure is not None else None
        grads = [p.grad.flatten() for g in self.param_groups for p in g["params"] if p.grad is not None]
        _RecordingSGD.seen.append(torch.cat(grads).clone())
        super().step()
        return loss


@pytest.mark.parametrize("algorithm", ["norm", "value", None])
def test_gradient_clipping_from_the_trainer_config(make_cfg, algorithm: str | None) -> None:
    from functools import partial

    from dlhw.run.build import build

    clip = [] if algorithm is None else [
        "trainer.gradient_clip_val=0.01", f"trainer.gradient_clip_algorithm={algorithm}"]
    cfg = make_cfg(["model=mlp", "data.max_train_samples=256", "trainer.max_epochs=1",
                    "+trainer.limit_train_batches=4", "trainer.limit_val_batches=1", "logger=none",
                    "callbacks=none", "optimizer.lr=0.5", *clip], name=f"clip-{algorithm}")
    p = build(cfg)
    p.module.optimizer_factory = partial(_RecordingSGD, lr=0.1)
    _RecordingSGD.seen = []
    p.trainer.fit(p.module, datamodule=p.datamodule)
    assert len(_RecordingSGD.seen) == 4
    norms = [g.norm().item() for g in _RecordingSGD.seen]
    biggest = [g.abs().max().item() for g in _RecordingSGD.seen]
    if algorithm == "norm":
        assert max(norms) <= 0.01 * 1.001
    elif algorithm == "value":
        assert max(biggest) <= 0.01 + 1e-7 and max(norms) > 0.01
    else:
        assert min(norms) > 0.05  # what clipping would have cut


# ----------------------------------------------------------------------------- augmentation
def _batch(n: int = 8, c: int = 3, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, c, 16, 16, generator=torch.Generator().manual_seed(seed))


def test_augment_existing_options_unchanged_by_the_new_ones() -> None:
    x = _batch()
    aug = Augment(crop_padding=2, hflip=True, rotation=10, scale=0.1)
    got = augment(aug, x, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    expected = random_affine(hflip(random_crop(x, 2, g), g), 10, 0.1, g)
    assert torch.equal(got, expected)
    assert not Augment().active and Augment(blur=1.0).active and Augment(saturation=0.1).active


def test_color_jitter_is_seeded_per_image_and_stays_in_range() -> None:
    x = _batch()
    a = color_jitter(x, 0.4, 0.4, 0.4, torch.Generator().manual_seed(1))
    b = color_jitter(x, 0.4, 0.4, 0.4, torch.Generator().manual_seed(1))
    c = color_jitter(x, 0.4, 0.4, 0.4, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == x.shape and a.min() >= 0 and a.max() <= 1
    dim = x * 0.5  # brightness alone scales each image by one factor
    out = color_jitter(dim, brightness=0.5, generator=torch.Generator().manual_seed(0))
    ratio = out / dim
    factors = ratio.flatten(1)
    assert torch.allclose(factors, factors[:, :1].expand_as(factors), atol=1e-5)
    assert factors[:, 0].std() > 0.01  # different images, different factors
    grey = x.mean(1, keepdim=True).expand(-1, 3, -1, -1)
    assert torch.allclose(color_jitter(grey, saturation=0.9, generator=torch.Generator()), grey, atol=1e-6)


def test_gaussian_blur_smooths_noise_and_keeps_flat_images() -> None:
    flat = torch.full((4, 3, 16, 16), 0.3)
    assert torch.allclose(gaussian_blur(flat, 2.0, torch.Generator().manual_seed(0)), flat, atol=1e-6)
    noise = _batch()
    blurred = gaussian_blur(noise, 2.0, torch.Generator().manual_seed(0))
    assert blurred.shape == noise.shape
    assert blurred.var() < 0.7 * noise.var()
    assert blurred.mean().item() == pytest.approx(noise.mean().item(), abs=0.02)
    assert torch.equal(gaussian_blur(noise, 0.0), noise)


def test_augment_config_reaches_the_datamodule(make_cfg) -> None:
    from hydra.utils import instantiate as inst

    cfg = make_cfg(["data.augment.brightness=0.3", "data.augment.blur=1.5", "data.augment.hflip=true"])
    dm = inst(cfg.data)
    dm.setup()
    assert dm.augment == Augment(hflip=True, brightness=0.3, blur=1.5)
    assert dm.transform.augment is not None


# ----------------------------------------------------------------------------- image folder
def test_image_folder_split_folder_names(tmp_path: Path) -> None:
    from conftest import write_image_folder

    from dlhw.data import ImageFolderData
    from dlhw.errors import DataNotFoundError

    root = write_image_folder(tmp_path / "cd", n_train=4, n_test=2)
    (root / "test").rename(root / "validation")
    dm = ImageFolderData(root=str(root), size=24, test_dir="validation", cache=False)
    dm.setup()
    assert dm.class_names == ["cat", "dog"] and dm.in_shape == (3, 24, 24)
    assert dm.splits.test_x.shape[0] == 4
    with pytest.raises(DataNotFoundError, match="data.train_dir / data.test_dir"):
        ImageFolderData(root=str(root), size=24, cache=False).setup()


# ----------------------------------------------------------------------------- input scaling
def test_normalize_standard_mean_and_none(cifar_root: Path) -> None:
    from dlhw.data import CIFAR10Data
    from dlhw.data.cifar10 import CIFAR10_MEAN
    from dlhw.errors import UserError

    stats = {}
    for mode in ("standard", "mean", "none"):
        dm = CIFAR10Data(root=str(cifar_root), normalize=mode)
        dm.setup()
        x = dm.transform(dm.splits.train_x[:50])
        raw = dm.splits.train_x[:50].float()
        stats[mode] = x
    assert torch.allclose(stats["none"], raw / 255)
    mean = torch.tensor(CIFAR10_MEAN)
    # "mean": pixel units with the (CIFAR-10) channel mean removed, no division by std
    assert torch.allclose(stats["mean"], raw - 255 * mean.view(1, 3, 1, 1), atol=1e-3)
    assert stats["standard"].std() < 10 < stats["mean"].std()
    with pytest.raises(UserError, match="data.normalize"):
        CIFAR10Data(root=str(cifar_root), normalize="pixel")


def test_max_train_samples_is_a_seeded_random_subset_of_a_class_sorted_source(tmp_path: Path) -> None:
    from conftest import write_image_folder

    from dlhw.data import ImageFolderData

    root = write_image_folder(tmp_path / "sorted", n_train=12, n_test=2)  # 12 cats, then 12 dogs
    picks = []
    for _ in range(2):
        dm = ImageFolderData(root=str(root), size=16, cache=False, max_train_samples=10, val_fraction=0)
        dm.setup()
        picks.append(dm.splits.train_y.clone())
    assert len(picks[0]) == 10 and torch.equal(picks[0], picks[1])
    assert set(picks[0].tolist()) == {0, 1}  # the first 10 would all be cats
