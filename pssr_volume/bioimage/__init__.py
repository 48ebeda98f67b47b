"""bioimage.io model packages of pssr-volume models (``pssr-volume export-model``).

:mod:`.package` writes one; :mod:`.source` makes the network's standalone source, :mod:`.tensors`
the test tensors and cover by pssr_volume's own inference, :mod:`.describe` the description
(spec format 0.5, bioimageio.spec's models), :mod:`.documentation` its words and
:mod:`.provenance` the training data's terms and citations. Importing this package loads
nothing heavy; :mod:`.config` and :mod:`.checks` stay free of torch.
"""
