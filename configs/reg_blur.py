"""Gaussian blur sweep (Yosinski et al. 2015): 4 VGG16 conv4_3 channels x 4 blur radii, every 4 steps.

    python -m jfv --config=configs/reg_blur.py --workdir=/tmp/jfv_reg_blur

Pixel parameterisation, Adam 0.05, then x <- G_sigma * x every ``blur_every`` steps, sigma in pixels
swept over 0, 0.5, 1, 2 in one compiled program (the kernel is sized for the largest sigma). Expected:
sharper, noisier images at 0 and smooth low-frequency ones at 2, in ~2-4 minutes on a 2-core CPU.
For the differentiable blur *penalty* instead: --config.regulariser=blur_penalty
--config.strengths=0,-0.001,-0.01,-0.1 (weights of sum (x - stopgrad(G_sigma x))^2, sigma = blur_sigma).
"""

from configs import reg_sweep


def get_config():
    c = reg_sweep.get_config()
    c.regulariser = "blur"
    c.strengths = "0,0.5,1,2"
    c.blur_every = 4
    return c
