"""VGG16 pool5 features of 500 CIFAR-10 test images: neighbours, PCA and t-SNE maps, k-NN accuracy.

    python -m jfv --config=configs/embeddings.py --workdir=/tmp/jfv_embeddings

Seed 002's "last layer" slides with the features jfv has pretrained weights for (VGG16's convolution
stack; pool5 averaged over its 3x3 positions: 512-d), on 50 test images per class upscaled from 32 to
96 px. Needs CIFAR-10: --config.cifar10_path=PATH (the python or binary release, packed or extracted)
or $JFV_CIFAR10, else ../shared's JPEG copy (or --config.shared_dir=PATH). Other data: --config.dataset=PATH
(root/<class>/ images, ImageNet's wnid folders included, or a flat folder: no k-NN then, unless
--config.labels_file=LOC_val_solution.csv or the devkit's ground truth labels ImageNet validation images). The CIFAR-10 ResNet's penultimate layer:
configs/embeddings_cifar_resnet20.py. Expected: neighbours.png (8 queries x [query, 6 feature-space,
6 pixel-space neighbours]), pca.png, tsne.png, features.npz, index.html, manifest.json. Measured
(docs/analysis.md): k-NN accuracy (leave-one-out, k = 10, cosine) 0.500 in feature space against 0.202
in pixel space (chance 0.1); vehicles and animals apart on the t-SNE map; 80 s on a loaded 2-core CPU
(56 s of it VGG16 features).
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.recipe = "embeddings"
    c.model = "vgg16"  # jfv.models.names()
    c.pretrained = True  # False: a random init of the same layout
    c.seed = 0  # init seed (pretrained False), t-SNE's seed, the maps' subset
    c.weights_dir = ""  # "" = $JFV_WEIGHTS_DIR or the repo's weights/
    c.layer = "pool5"  # any layer; spatial layers are averaged over positions
    c.dataset = "cifar10"  # cifar10 | a folder of images or of <class>/ folders
    c.split = "test"  # cifar10 only: train | test
    c.per_class = 50  # cifar10 only: files 0000..per_class-1 of each class (0 = all)
    c.limit = 0  # at most this many images (0 = all)
    c.shared_dir = ""  # "" = $JFV_SHARED, else ../shared beside the repository
    c.cifar10_path = ""  # CIFAR-10 .tar.gz or folder, in any form ("" = $JFV_CIFAR10, else <shared>/data/cifar10/)
    c.labels_file = ""  # a flat folder's ImageNet val labels: LOC_val_solution.csv or the devkit's ground truth
    c.image_size = 96  # images are resized (shorter side) and centre-cropped to this
    c.batch_size = 32
    c.pixel_size = 32  # pixel space and thumbnails: images at this size (CIFAR-10's own)
    c.metric = "cosine"  # cosine | l2, for neighbours and k-NN
    c.queries = 8  # rows of neighbours.png, spread evenly over the dataset
    c.neighbours = 6  # neighbours shown per query and space
    c.knn_k = 10  # k of the k-NN accuracy
    c.tsne_perplexity = 30.0
    c.tsne_iterations = 1000
    c.map_points = 500  # thumbnails drawn on each map (a fixed random subset when more)
    c.thumbnail = 20  # drawn thumbnail side in px (frames in class colours included)
    c.verbose = True  # progress lines on stderr
    return c
