"""The conversion and judgement rules of the notebook tests (notebook_rules.py) do what they say: each rule is
checked on the cases it must pass and on the ones it must flag."""

import pytest

from notebook_rules import compare, compare_figures, convert, data_cells, is_environment_cell


@pytest.mark.parametrize(
    "source, expected",
    [
        ("from cs231n.layers import *", "from xpnet.layers import *"),
        (
            "  from cs231n.classifiers.fc_net import FullyConnectedNet",
            "  from xpnet.classifiers.fc_net import FullyConnectedNet",
        ),
        ("import cs231n.solver as s", "import xpnet.solver as s"),
        ("from cs231n import optim", "from xpnet import optim"),
        # Only import lines, only the package name: a path or a name that merely starts with it stays.
        (
            "kitten = imread('cs231n/notebook_images/kitten.jpg')",
            "kitten = imread('cs231n/notebook_images/kitten.jpg')",
        ),
        ("from cs231nx.layers import *", "from cs231nx.layers import *"),
        ("x = 1  # from cs231n.layers import *", "x = 1  # from cs231n.layers import *"),
    ],
)
def test_the_import_rule_changes_the_package_in_import_lines_only(source, expected):
    assert convert(source) == expected


@pytest.mark.parametrize(
    "source, environment",
    [
        ("from google.colab import drive\ndrive.mount('/content/drive')", True),
        ("%cd /content/drive/My\\ Drive/$FOLDERNAME\n!bash get_datasets.sh", True),
        ("!python setup.py build_ext --inplace", True),
        ("# %cd drive\n# !bash get_datasets.sh\n# from google.colab import drive", False),  # commented out: runs as is
        ("%matplotlib inline\n%load_ext autoreload\nimport numpy as np", False),
        ("import sys, importlib\nsys.modules['imp'] = importlib", False),
        ("x = 3  # !important", False),
    ],
)
def test_environment_only_cells_are_the_machine_setup(source, environment):
    assert is_environment_cell(source) is environment


def test_data_cells_follow_the_data_and_stop_at_a_fresh_name():
    cells = {
        "setup": "%matplotlib inline\nimport numpy as np",
        "load": "data = get_CIFAR10_data()\nfor k, v in data.items():\n    print(k, v.shape)",
        "check": "np.random.seed(231)\nmodel = FullyConnectedNet([4])\nprint(model.loss(np.ones((2, 3))))",
        "train": "solver = Solver(model, data)\nsolver.train()",
        "after": "print(model.params['W1'].mean())",  # the model the Solver trained
        "fresh": "model = FullyConnectedNet([5])\nprint(model.loss(np.ones((2, 3))))",
        "helper": "def run(size):\n    return Solver(FullyConnectedNet([size]), data)",
        "uses helper": "s = run(N)",
        "unrelated": "print(rel_error(1.0, 1.0))",
        "check after": "N = 3\nprint(N)",  # N was passed to a data call, but a fresh N is not the data's
        "plot": "plt.plot(np.arange(3), solver.loss_history)",
        "numpy after a plot": "print(np.ones(3).sum())",  # np was only used in a data cell's argument
    }
    assert data_cells(cells) == {"load", "train", "after", "helper", "uses helper", "plot"}


_SAVED = "dx error:  1.7e-09\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n"
_DIFFERENCE = "Difference:  4.9e-11\n"


@pytest.mark.parametrize(
    "got, problem",
    [
        (_SAVED, None),
        ("dx error:  1.6e-08\nInitial loss:  2.304275922\n  means: [1.5  -2.25]\nSpeedup: 0.8x\n", None),
        ("dx error:  9e-08\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n", None),
        ("dx error:  1.1e-07\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n", "10x"),
        ("dx error:  1.7e-09\nInitial loss:  2.298294504947024\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n", "1e-6"),
        ("dx error:  1.7e-09\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.26]\nSpeedup: 17.2x\n", "1e-6"),
        ("dx error:  1.7e-09\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.25]\nSpeedup: -1x\n", "positive"),
        ("dx error:  1.7e-09\nInitial loss:  nan\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n", "1e-6"),
        ("dw error:  1.7e-09\nInitial loss:  2.30427592207859\n  means: [ 1.5 -2.25]\nSpeedup: 17.2x\n", "printed"),
        ("dx error:  1.7e-09\n", "lines"),
    ],
)
def test_compare_judges_each_number_by_what_its_line_reports(got, problem):
    failures, reports, judged = compare("cell", got, _SAVED, data=False)
    assert reports == []
    if problem is None:
        assert failures == [] and judged == 5
    else:
        assert len(failures) == 1 and problem in failures[0], failures


@pytest.mark.parametrize("got, fails", [("Difference:  4.9e-10\n", False), ("Difference:  5e-10\n", True)])
def test_an_implementation_difference_has_no_noise_floor(got, fails):
    assert bool(compare("cell", got, _DIFFERENCE, data=False)[0]) is fails


def test_compare_reports_data_dependent_numbers_and_judges_counts_and_text():
    saved = "(Iteration 1 / 200) loss: 2.302585\n(Epoch 0 / 10) train acc: 0.103000; val_acc: 0.107000\n"
    failures, reports, judged = compare(
        "c", saved.replace("2.302585", "2.31").replace("0.103", "0.091"), saved, data=True
    )
    assert failures == [] and len(reports) == 2 and judged == 4
    failures, _, _ = compare("c", saved.replace("/ 200", "/ 100"), saved, data=True)
    assert len(failures) == 1 and "(a count)" in failures[0]
    failures, _, _ = compare("c", saved.replace("loss", "cost"), saved, data=True)
    assert len(failures) == 1 and "printed" in failures[0]


def test_compare_leaves_out_the_environment_and_numpy_version_reprs():
    cython = (
        "run the following from the cs231n directory and try again:\npython setup.py build_ext --inplace\n"
        "You may also need to restart your iPython kernel\n"
    )
    assert compare("c", "", cython, data=False) == ([], [], 0)
    assert compare("c", "('mean', np.float64(1.5))\n", "('mean', 1.5)\n", data=False) == ([], [], 1)


def test_compare_figures_counts_figures_and_axes_not_pixels():
    saved = ["<Figure size 1000x800 with 3 Axes>"]
    assert compare_figures("c", ["<Figure size 720x576 with 3 Axes>"], saved) == []
    assert compare_figures("c", ["<Figure size 1000x800 with 2 Axes>"], saved)
    assert compare_figures("c", [], saved)
    assert compare_figures("c", saved * 2, saved)
