"""Training and prediction for the zoo: the training cache (``cache``), one run per fold into a run
folder (``train``: networks in ``networks``, rules in ``rules``), and fold ensembles written as the
benchmark's predictions files (``predict``, ``outputs``)."""
