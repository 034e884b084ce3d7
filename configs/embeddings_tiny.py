"""A seconds-long embeddings run for tests: VGG16 pool5 of 40 CIFAR-10 test images at 32 px.

    python -m jfv --config=configs/embeddings_tiny.py --workdir=/tmp/jfv_embeddings_tiny

Expected: every output of configs/embeddings.py; with 4 images a class the numbers mean little.
"""

from configs import embeddings


def get_config():
    c = embeddings.get_config()
    c.per_class = 4
    c.image_size = 32
    c.batch_size = 20
    c.queries = 3
    c.neighbours = 3
    c.knn_k = 3
    c.tsne_perplexity = 5.0
    c.tsne_iterations = 300
    c.map_points = 40
    c.verbose = False
    return c
