"""Train CS231n's ThreeLayerConvNet with Adam: digits by default (>95% test accuracy in seconds), or CIFAR-10.

    python examples/train_cnn.py                         # digits, CuPy if a GPU is usable, else NumPy
    python examples/train_cnn.py --backend torch --plot cnn.png --filters filters.png
    python examples/train_cnn.py --data cifar10 --data-dir ~/data/cifar-10-batches-py --num-filters 32 \\
        --filter-size 7 --hidden-dim 500 --epochs 5
"""

from __future__ import annotations

from _common import (  # first: it sets the thread defaults NumPy reads on import
    make_parser,
    parse_args,
    report_test_accuracy,
    start,
    train,
)

# isort: split
from xpnet.classifiers import ThreeLayerConvNet
from xpnet.vis_utils import plot_filters


def main(argv=None):
    parser = make_parser(__doc__, epochs=15, batch_size=50, lr=2e-3, lr_decay=0.9, reg=1e-3)
    parser.add_argument("--num-filters", type=int, default=32, help="filters of the convolutional layer")
    parser.add_argument("--filter-size", type=int, default=3, help="their height and width")
    parser.add_argument("--hidden-dim", type=int, default=128, help="units of the hidden affine layer")
    parser.add_argument("--weight-scale", type=float, default=0.05, help="std of the initial weights")
    parser.add_argument("--filters", metavar="PATH", help="write the first-layer filters to this PNG (default: none)")
    args = parse_args(parser, argv)
    xp, device, data = start(args)
    model = ThreeLayerConvNet(
        input_dim=tuple(data["X_train"].shape[1:]),
        num_filters=args.num_filters,
        filter_size=args.filter_size,
        hidden_dim=args.hidden_dim,
        num_classes=10,
        weight_scale=args.weight_scale,
        reg=args.reg,
        dtype=args.dtype,
        xp=xp,
        device=device,
    )
    solver = train(model, data, args, name="train_cnn")
    if args.filters:
        print(f"filters written to {plot_filters(model.params['W1'], args.filters)}")
    report_test_accuracy(solver, data)


if __name__ == "__main__":
    main()
