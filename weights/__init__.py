"""The weights npespcn ships, trained by its own trainer (see README.md in this folder).

Installed as the package ``npespcn.weights`` so that ``importlib.resources`` finds the ``.npz`` files in
a wheel as well as in a source checkout.
"""
