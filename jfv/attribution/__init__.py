"""Attribution: which pixels make a target (a class, a channel, a neuron) respond.

Every method has the shape ``f(model, images, target, ...) -> maps``, batched over images and
jit-compiled: saliency, gradient x input, SmoothGrad, guided backprop and deconvnet (gradient
formulation, by swapping the model's ReLU for a ``custom_vjp`` one; and deconvnet with explicit
max-pool switches), CAM (GAP or GMP + dense heads), Grad-CAM, occlusion, and deletion / insertion
curves to compare them with numbers. See docs/attribution.md.
"""

from jfv.attribution.targets import Target, TargetError, channel, label, neuron, strongest
from jfv.attribution.gradients import (
    deconvnet,
    deconvnet_relu,
    gradient,
    gradient_x_input,
    guided_backprop,
    guided_relu,
    saliency,
    smoothgrad,
)
from jfv.attribution.switches import (
    NoSwitchesError, Switches, best_per_block, deconvnet_switches, pool_with_switches, project_units, unpool,
)
from jfv.attribution.cam import (
    HeadError,
    NoSpatialExtentError,
    activation_gradient,
    cam,
    cam_from_features,
    cam_top_k,
    grad_cam,
    head_kernel,
    upsample,
)
from jfv.attribution.occlusion import GREY, Occlusion, WindowError, occlusion, occlusion_chunk, pixel_map, window_positions
from jfv.attribution.faithfulness import Curves, blurred_baseline, deletion_insertion, ranks
from jfv.attribution import heads, pictures

from jfv.runtime import moved  # noqa: E402

__getattr__ = moved.renamed(__name__)  # old names (jfv.runtime.moved.NAMES)
