"""Train CS231n's FullyConnectedNet with Adam: digits by default (>95% test accuracy in seconds), or CIFAR-10.

python examples/train_fc.py                          # digits, CuPy if a GPU is usable, else NumPy
python examples/train_fc.py --backend torch --plot fc.png
python examples/train_fc.py --data cifar10 --data-dir ~/data/cifar-10-batches-py --epochs 10 --hidden-dims 512 256
"""

from __future__ import annotations

import math

from _common import (  # first: it sets the thread defaults NumPy reads on import
    make_parser,
    parse_args,
    report_test_accuracy,
    start,
    train,
)

# isort: split
from xpnet.classifiers import FullyConnectedNet


def main(argv=None):
    parser = make_parser(__doc__, epochs=30, batch_size=50, lr=2e-3, lr_decay=0.9, reg=1e-3)
    parser.add_argument(
        "--hidden-dims", type=int, nargs="+", default=[512, 256], metavar="H", help="hidden layer sizes"
    )
    parser.add_argument(
        "--normalization",
        choices=("none", "batchnorm", "layernorm"),
        default="batchnorm",
        help="after each hidden layer",
    )
    parser.add_argument("--dropout-keep", type=float, default=0.7, help="keep probability; 1 disables dropout")
    parser.add_argument(
        "--weight-scale",
        type=float,
        help="std of the initial weights (default: He initialization, sqrt(2 / input dimension))",
    )
    args = parse_args(parser, argv)
    xp, device, data = start(args)
    input_dim = math.prod(data["X_train"].shape[1:])
    model = FullyConnectedNet(
        args.hidden_dims,
        input_dim=input_dim,
        num_classes=10,
        dropout_keep_ratio=args.dropout_keep,
        normalization=None if args.normalization == "none" else args.normalization,
        reg=args.reg,
        weight_scale=math.sqrt(2.0 / input_dim) if args.weight_scale is None else args.weight_scale,
        dtype=args.dtype,
        xp=xp,
        device=device,
    )
    solver = train(model, data, args, name="train_fc")
    report_test_accuracy(solver, data)


if __name__ == "__main__":
    main()
