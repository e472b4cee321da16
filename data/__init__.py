"""The image sets npespcn ships: T91 (training), Set5 and Set14 (testing); see README.md in this folder.

Installed as the package ``npespcn.data`` so that ``importlib.resources`` finds the images in a wheel as
well as in a source checkout (:func:`npespcn.training.datasets.builtin_dir`).
"""
