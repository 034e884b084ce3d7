"""A wrapped 1-channel (grayscale) CNN's ``relu3`` features of 100 CIFAR-10 test images, as luma:
neighbours, PCA and t-SNE maps, k-NN accuracy.

    python -m jfv --config=configs/embeddings_gray_cnn.py --workdir=/tmp/jfv_embeddings_gray

``gray_cnn`` (jfv/models/examples.py) has RANDOM weights (no training run ships with it): the
numbers say how far random convolutions of luma get, not what a trained network learns. Each image
is its ITU-R BT.601 luma (``Model.from_rgb``) for the features, the pixel space and the (grey)
thumbnails. Expected: every output of configs/embeddings.py in about 20 s on a 2-core CPU; measured
k-NN accuracy (leave-one-out, k = 5, cosine) 0.14 in feature space against 0.18 in pixel space
(chance 0.1): random features do not beat pixels.
"""

from configs import embeddings


def get_config():
    c = embeddings.get_config()
    c.model = "gray_cnn"  # random weights: see the docstring
    c.layer = "relu3"  # averaged over its 8x8 positions: 32-d
    c.per_class = 10
    c.image_size = 32
    c.batch_size = 25
    c.queries = 4
    c.neighbours = 4
    c.knn_k = 5
    c.tsne_perplexity = 10.0
    c.tsne_iterations = 300
    c.verbose = False
    return c
