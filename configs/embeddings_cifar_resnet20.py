"""CIFAR ResNet-20's penultimate layer (avgpool, 64-d) on 1000 CIFAR-10 test images at their own 32 px.

    python -m jfv.convert --model=cifar_resnet20 --checkpoint=../shared/weights/cifar10-resnet/resnet20-12fca82f.th
    python -m jfv --config=configs/embeddings_cifar_resnet20.py --workdir=/tmp/jfv_embeddings_r20

The first command converts the checkpoint once (docs/models.md). Expected: the outputs of
configs/embeddings.py; the classifier's own features separate the classes, so the t-SNE map shows
clusters per class (cat/dog and deer/horse/bird overlap). Measured (docs/analysis.md): k-NN accuracy
(leave-one-out, k = 10, cosine) 0.821 in feature space against 0.248 in pixel space; PCA's first two
components hold 35.9% of the variance; 36 s on a loaded 2-core CPU (features 5 s, t-SNE 14 s).
"""

from configs import embeddings


def get_config():
    c = embeddings.get_config()
    c.model = "cifar_resnet20"
    c.layer = "avgpool"
    c.per_class = 100
    c.image_size = 32
    c.batch_size = 100
    c.map_points = 600
    return c
