"""MAE pretraining with accelerate (`train/pretrain.py`), its configs and launch files."""
