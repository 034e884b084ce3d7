"""Occlusion sensitivity of a trained CIFAR-10 network: p(true class) as a grey square slides over.

    python -m jfv --config=configs/cifar10_train.py --workdir=/tmp/jfv_train
    python -m jfv --config=configs/cifar10_sensitivity.py --workdir=/tmp/jfv_sensitivity \
        --config.weights_dir=/tmp/jfv_train

Zeiler & Fergus 2014, figure 7 (their 224 px images and ImageNet classes; here 32 px CIFAR-10 test
images and an 8 px square on a 2 px grid, 13 x 13 positions). Any CIFAR-10 classifier works:
``--config.model=cifar_resnet20`` with its converted weights.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "sensitivity"
    c.model = "cifar_convnet"
    c.weights_dir = ""  # the train run's workdir (it holds <workdir>/cifar_convnet); "" = the repo's weights/
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.test_per_class = 1  # test images per class (files 0000..k-1 of test/<class>/)
    c.window = 8  # the grey square's side (px)
    c.stride = 2  # px between its positions
    c.fill = 0.5  # grey
    c.batch_size = 169  # occluded images per model call
    return c
