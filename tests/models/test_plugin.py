"""custom_imports=['swin_dense'] makes the backbone usable in mmdet and mmseg configs this project did not write,
and changes nothing else: the runtime pieces are switched on by importing swin_dense.runtime."""
import os
import subprocess
import sys
import textwrap

import torch
from mmengine.config import Config

BACKBONE = ("dict(_delete_=True, type='SwinTransformerV2', arch=dict(embed_dims=16, depths=[1, 1, 1, 1], "
            "num_heads=[1, 2, 4, 8]), window_size=4, pretrained_window_size=[4, 4, 4, 2], drop_path_rate=0.1)")


def _config(tmp_path, base: str, rest: str) -> Config:
    path = tmp_path / 'cfg.py'
    path.write_text(textwrap.dedent(f"""
        _base_ = ['{base}']
        custom_imports = dict(imports=['swin_dense'], allow_failed_imports=False)
        """) + rest)
    return Config.fromfile(str(path))


def test_mmdet_mask_rcnn_loss_step(tmp_path):
    from mmdet.registry import MODELS
    from mmdet.structures import DetDataSample
    from mmdet.utils import register_all_modules
    from mmengine.structures import InstanceData
    register_all_modules()
    cfg = _config(tmp_path, 'mmdet::_base_/models/mask-rcnn_r50_fpn.py',
                  f'model = dict(backbone={BACKBONE}, neck=dict(in_channels=[16, 32, 64, 128]))\n')
    model = MODELS.build(cfg.model)
    model.init_weights()
    assert type(model.backbone).__name__ == 'SwinTransformerV2'
    sample = DetDataSample(metainfo=dict(img_shape=(96, 128), pad_shape=(96, 128), scale_factor=(1.0, 1.0),
                                         batch_input_shape=(96, 128)))
    masks = torch.zeros(1, 96, 128, dtype=torch.bool)
    masks[0, 20:60, 30:90] = True
    from mmdet.structures.mask import BitmapMasks
    sample.gt_instances = InstanceData(bboxes=torch.tensor([[30., 20., 90., 60.]]), labels=torch.tensor([1]),
                                       masks=BitmapMasks(masks.numpy(), 96, 128))
    losses = model.loss(torch.randn(1, 3, 96, 128), [sample])
    total, log_vars = model.parse_losses(losses)
    assert {'loss_rpn_cls', 'loss_cls', 'loss_mask'} <= set(log_vars)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.layers[0].blocks[0].attn.cpb_mlp[0].weight.grad is not None


def test_mmseg_upernet_loss_step(tmp_path):
    from mmengine.structures import PixelData
    from mmseg.registry import MODELS
    from mmseg.structures import SegDataSample
    from mmseg.utils import register_all_modules
    register_all_modules()
    cfg = _config(tmp_path, 'mmseg::_base_/models/upernet_swin.py',
                  f"norm_cfg = dict(type='BN', requires_grad=True)\n"
                  f'model = dict(data_preprocessor=None, backbone={BACKBONE}, '
                  f'decode_head=dict(in_channels=[16, 32, 64, 128], channels=32, num_classes=5, norm_cfg=norm_cfg), '
                  f'auxiliary_head=dict(in_channels=64, channels=16, num_classes=5, norm_cfg=norm_cfg))\n')
    model = MODELS.build(cfg.model)
    model.init_weights()
    samples = []
    for _ in range(2):
        sample = SegDataSample(metainfo=dict(img_shape=(64, 96), pad_shape=(64, 96)))
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 5, (1, 64, 96)))
        samples.append(sample)
    losses = model.loss(torch.randn(2, 3, 64, 96), samples)
    total, log_vars = model.parse_losses(losses)
    assert {'decode.loss_ce', 'aux.loss_ce'} <= set(log_vars)
    assert torch.isfinite(total)
    total.backward()
    assert model.backbone.patch_embed.proj.weight.grad is not None


# Run in a fresh interpreter: this test process has long imported swin_dense.runtime.
IMPORT_EFFECTS = textwrap.dedent("""
    import torch
    from mmengine.fileio.backends import backends
    from mmengine.registry import HOOKS, MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS

    RUNTIME_HOOKS = ('AtomicCheckpointHook', 'RNGStateHook', 'ZeroOptimizerHook', 'ValidateDatasetHook')
    RUNTIME_WRAPPERS = ('NanGuardOptimWrapper', 'NanGuardAmpOptimWrapper')

    def allowlisted():
        # names of the allowlist's entries torch holds (torch adds its own entries, e.g. DTensor's, as it goes)
        entries = [e[1] if isinstance(e, tuple) else getattr(e, '__qualname__', '') for e in
                   torch.serialization.get_safe_globals()]
        return sorted(n for n in entries if n in ('HistoryBuffer', 'Counter', 'builtins.getattr'))

    def state():
        return dict(model='SwinTransformerV2' in MODELS.module_dict,
                    constructor='SwinV2LayerDecayOptimizerConstructor' in OPTIM_WRAPPER_CONSTRUCTORS.module_dict,
                    hooks=sorted(h for h in RUNTIME_HOOKS if h in HOOKS.module_dict),
                    wrappers=sorted(w for w in RUNTIME_WRAPPERS if w in OPTIM_WRAPPERS.module_dict),
                    backend='atomic_local' in backends, allowlist=allowlisted())

    before = state()
    import swin_dense
    plain = state()
    import swin_dense.runtime
    from swin_dense.engine.safe_load import safe_globals
    runtime = state()
    print('BEFORE', before)
    print('PLAIN', plain)
    print('RUNTIME', runtime)
    assert before == dict(model=False, constructor=False, hooks=[], wrappers=[], backend=False, allowlist=[]), before
    assert plain == dict(before, model=True, constructor=True), plain
    assert runtime == dict(model=True, constructor=True, hooks=sorted(RUNTIME_HOOKS), wrappers=sorted(RUNTIME_WRAPPERS),
                           backend=True, allowlist=['Counter', 'HistoryBuffer', 'builtins.getattr']), runtime
    assert all(e in torch.serialization.get_safe_globals() for e in safe_globals())
    print('OK')
""")


def test_import_registers_the_model_and_the_constructor_only():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get('PYTHONPATH', ''), PYTHONWARNINGS='ignore')
    proc = subprocess.run([sys.executable, '-c', IMPORT_EFFECTS], cwd=root, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and 'OK' in proc.stdout, proc.stdout + proc.stderr[-3000:]
