"""Neural models and model directories: ``encoder`` (the pretrained encoder), ``heads`` (one module per
task family), ``store`` (save and load medtune model directories) and ``card`` (the model card)."""
